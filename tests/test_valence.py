"""send_valence_lstm: local attention against NumPy, causality, modalities, CCC training."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.eval.ccc import ccc_loss
from fer_jax.models import build_model
from fer_jax.models import valence
from fer_jax.models.valence import LocalAttention, SendValenceLstm
from helpers.fitting import assert_adam_steps_fit
from helpers.tolerance import assert_caught, assert_close, largest_param_flipped, output_tolerance

STEPS, MELS, MEL_PER_STEP = 6, 8, 5
TINY = dict(
    frame_backbone_kwargs={"blocks": ((4,), (8,))},
    n_mels=MELS,
    mel_frames_per_step=MEL_PER_STEP,
    projection_dim=8,
    lstm_hidden=8,
    window=3,
)


def _rngs(seed=0):
    # rbg keys: XLA compiles threefry draws slowly on small CPUs; random init is not under test.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


@functools.cache
def _built(modalities=("video", "audio")):
    return nnx.jit(
        lambda: build_model("send_valence_lstm", num_classes=1, rngs=_rngs(), modalities=modalities, **TINY)
    )()


def _build(modalities=("video", "audio")):
    # One jitted init per config for the whole file; each test gets its own copy to mutate.
    return nnx.clone(_built(modalities))


_forward = nnx.jit(lambda model, inputs: model(inputs))


def _inputs(batch=4, seed=0, extra_mel_frames=1):
    """Random clips and a valence that follows each step's face brightness (learnable)."""
    rng = np.random.default_rng(seed)
    brightness = rng.uniform(0, 1, (batch, STEPS))
    frames = 0.2 * rng.uniform(0, 1, (batch, STEPS, 16, 16, 1)) + 0.8 * brightness[..., None, None, None]
    # T * m frames plus the centred final frame that log_mel adds.
    log_mel = rng.normal(size=(batch, STEPS * MEL_PER_STEP + extra_mel_frames, MELS))
    inputs = {"frames": jnp.asarray(frames, jnp.float32), "log_mel": jnp.asarray(log_mel, jnp.float32)}
    return inputs, jnp.asarray(1.6 * brightness - 0.8, jnp.float32)


def test_local_attention_matches_numpy_float64():
    window, hidden = 3, 4
    layer = nnx.jit(lambda: LocalAttention(hidden, window=window, rngs=_rngs(2)))()
    h = np.random.default_rng(0).normal(size=(2, 7, hidden))
    got = np.asarray(nnx.jit(lambda m, h: m(h))(layer, jnp.asarray(h, jnp.float32)))

    def reference():
        w_a = np.asarray(layer.score.kernel[...], np.float64)
        w_c, b_c = np.asarray(layer.combine.kernel[...], np.float64), np.asarray(layer.combine.bias[...], np.float64)
        expected = np.zeros_like(h)
        for b in range(2):
            for t in range(7):
                js = range(max(0, t - window + 1), t + 1)  # the last `window` steps, t included
                e = np.array([h[b, t] @ w_a @ h[b, j] for j in js]) / np.sqrt(hidden)
                a = np.exp(e - e.max())
                a /= a.sum()
                context = sum(ai * h[b, j] for ai, j in zip(a, js))
                expected[b, t] = np.tanh(np.concatenate([context, h[b, t]]) @ w_c + b_c)
        return expected

    expected = reference()
    # float32 vs float64: bilinear scores (16 terms), softmax and context over the window, combine
    # over 8 features, tanh: 4 layers.
    tol = output_tolerance(expected, terms=hidden * hidden, layers=4)
    assert_close(got, expected, tol)
    with largest_param_flipped(layer) as path:
        assert_caught(got, reference(), tol, f"{path} flipped")


def test_output_is_valence_per_step_and_causal():
    model = _build()
    model.eval()
    assert model.task == "regression" and model.input_keys == ("frames", "log_mel")
    x, _ = _inputs()
    valence = _forward(model, x)
    assert valence.shape == (4, STEPS) and valence.dtype == jnp.float32
    assert bool(jnp.all(jnp.abs(valence) <= 1.0))
    # Changing step 3 onwards (video and audio) leaves steps 0..2 alone and moves step 3.
    later = {
        "frames": x["frames"].at[:, 3:].set(1.0),
        "log_mel": x["log_mel"].at[:, 3 * MEL_PER_STEP :].set(5.0),
    }
    changed = _forward(model, later)
    np.testing.assert_allclose(changed[:, :3], valence[:, :3], rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(changed[:, 3] - valence[:, 3]).max()) > 1e-6


def test_dropout_follows_train_and_eval_mode():
    model = _build()
    x, _ = _inputs()
    model.eval()
    np.testing.assert_array_equal(_forward(model, x), _forward(model, x))
    model.train()
    assert float(jnp.abs(_forward(model, x) - _forward(model, x)).max()) > 1e-6


def test_modalities_are_configurable():
    audio = _build(("audio",))
    audio.eval()
    assert audio.input_keys == ("log_mel",) and not hasattr(audio, "frame_cnn")
    x, _ = _inputs(extra_mel_frames=0)
    assert _forward(audio, {"log_mel": x["log_mel"]}).shape == (4, STEPS)
    features = nnx.eval_shape(
        lambda: SendValenceLstm(modalities=("features", "video"), features_dim=5, rngs=_rngs())
    )
    assert features.input_keys == ("frames", "features")  # canonical order whatever the config's
    with pytest.raises(ConfigError, match="features_dim"):
        SendValenceLstm(modalities=("features",), rngs=_rngs())
    with pytest.raises(ConfigError, match="subset"):
        SendValenceLstm(modalities=("text",), rngs=_rngs())
    with pytest.raises(ConfigError, match="num_classes must be 1"):
        build_model("send_valence_lstm", num_classes=7, rngs=_rngs())


def test_misaligned_audio_is_an_error():
    model = nnx.eval_shape(lambda: SendValenceLstm(rngs=_rngs(), **TINY))
    x, _ = _inputs(extra_mel_frames=-MEL_PER_STEP)  # one step short of the video
    with pytest.raises(ConfigError, match="log_mel"):
        model(x)


def test_parameter_count_of_default_model():
    model = nnx.eval_shape(lambda: SendValenceLstm(rngs=_rngs()))
    count = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    cnn = sum(9 * cin * cout + cout for cin, cout in [(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)])
    projections = (128 * 64 + 64) + (2 * 64 * 64 + 64)
    lstm = 4 * 128 * (128 + 128) + 2 * 4 * 128
    attention = 128 * 128 + (256 * 128 + 128)
    assert count == cnn + projections + lstm + attention + (128 + 1)


def test_adam_steps_raise_ccc_on_a_fixed_batch():
    batch, target = _inputs(seed=1)
    mask = jnp.ones(target.shape, bool).at[0, 4:].set(False)  # one shorter sequence
    assert_adam_steps_fit(_build(), batch, lambda outputs: ccc_loss(outputs, target, mask), learning_rate=1e-2,
                          steps=30, forward=_forward)


def test_words_modality_reads_word_features_beside_video_and_audio():
    model = _build(("video", "audio", "words"))
    model.eval()
    assert model.input_keys == ("frames", "log_mel", "word_features")
    x, _ = _inputs()
    rng = np.random.default_rng(2)
    words = jnp.asarray(rng.normal(size=(4, STEPS, valence.WORD_FEATURES)), jnp.float32)
    out = _forward(model, {**x, "word_features": words})
    assert out.shape == (4, STEPS)
    # The words reach the output: valence moves when only the word features change.
    assert not np.allclose(out, _forward(model, {**x, "word_features": 0 * words}))
    with pytest.raises(ConfigError, match="word_features"):
        model({**x, "word_features": words[..., :-1]})
