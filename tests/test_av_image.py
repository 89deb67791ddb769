"""av_image_inception: the joint image, an Inception block against NumPy, modes, learnability."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import build_model
from fer_jax.models.av_image import AvImageInception, InceptionBlock
from helpers.fitting import assert_adam_steps_fit, cross_entropy
from helpers.tolerance import assert_caught, assert_close, largest_param_flipped, output_tolerance


# Two stages: the same blocks as the paper-size model (three stages of 32, 64, 128 filters,
# counted in test_parameter_count_of_default_model) at a fraction of the compile time.
TINY = dict(image_size=16, stage_filters=(32, 64))


def _rngs(seed=0):
    # rbg keys: XLA compiles threefry draws slowly on small CPUs; random init is not under test.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


@functools.cache
def _built(**kwargs):
    return nnx.jit(lambda: build_model("av_image_inception", num_classes=3, rngs=_rngs(), **kwargs))()


def _build(**kwargs):
    # One jitted init per config for the whole file; each test gets its own copy to mutate.
    return nnx.clone(_built(**kwargs))


_forward = nnx.jit(lambda model, inputs: model(inputs))


def _inputs(batch=4, frames=3, size=16, wave_size=16, channels=1, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    frames = rng.uniform(0, 1, (batch, frames, size, size, channels))
    wave = rng.uniform(0, 1, (batch, wave_size, wave_size, 1))
    if labels is not None:
        # A learnable batch: class 1 has the brighter face and waveform picture.
        shift = 0.4 * np.asarray(labels, np.float64)
        frames = 0.2 * frames + shift[:, None, None, None, None]
        wave = 0.2 * wave + shift[:, None, None, None]
    return {"frames": jnp.asarray(frames, jnp.float32), "waveform_image": jnp.asarray(wave, jnp.float32)}


def _conv_same_np(x, kernel, bias):
    # Direct float64 cross-correlation with zero 'same' padding: (H, W, Cin) x (k, k, Cin, Cout).
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    h, w = x.shape[:2]
    out = np.empty((h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            out[i, j] = np.einsum("abc,abcd->d", xp[i : i + k, j : j + k], kernel)
    return out + bias


def _maxpool3_same_np(x):
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    h, w = x.shape[:2]
    return np.stack([[xp[i : i + 3, j : j + 3].max((0, 1)) for j in range(w)] for i in range(h)])


def test_inception_block_matches_numpy_float64():
    block = nnx.jit(lambda: InceptionBlock(3, 8, rngs=_rngs(1)))()
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 3))
    got = np.asarray(nnx.jit(lambda m, x: m(x))(block, jnp.asarray(x, jnp.float32)))[0]

    def conv(layer, v):
        return _conv_same_np(v, np.asarray(layer.kernel[...], np.float64), np.asarray(layer.bias[...], np.float64))

    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    x0 = x[0]

    def reference():
        return np.concatenate(
            [
                relu(conv(block.branch1, x0)),
                relu(conv(block.branch3, relu(conv(block.reduce3, x0)))),
                relu(conv(block.branch5, relu(conv(block.reduce5, x0)))),
                relu(conv(block.pool_proj, _maxpool3_same_np(x0))),
            ],
            axis=-1,
        )

    expected = reference()
    assert got.shape == (6, 6, 8)
    # float32 vs float64: two chained convolutions, the largest a 5x5 window over the reduction's channels.
    terms = max(int(np.prod(layer.kernel.shape[:-1])) for layer in (block.branch1, block.branch3, block.branch5))
    tol = output_tolerance(expected, terms=terms, layers=2)
    assert_close(got, expected, tol)
    with largest_param_flipped(block) as path:  # a kernel in the wrong layout misses by far more
        assert_caught(got, reference(), tol, f"{path} flipped")


def _abstract(**kwargs):
    # combine() reads no parameter, so shapes-only models (nothing drawn or compiled) suffice.
    return nnx.eval_shape(lambda: AvImageInception(3, rngs=_rngs(), **kwargs))


def test_joint_image_layouts():
    x = _inputs(batch=1, size=16, wave_size=16)
    face, wave = np.asarray(x["frames"][:, -1]), np.asarray(x["waveform_image"])
    side = _abstract(image_size=16).combine(x)
    assert side.shape == (1, 16, 32, 1)
    np.testing.assert_array_equal(side[:, :, :16], face)  # face on the left
    np.testing.assert_array_equal(side[:, :, 16:], wave)  # waveform on the right
    stacked = _abstract(image_size=16, layout="channels").combine(x)
    np.testing.assert_array_equal(stacked, np.concatenate([face, wave], -1))
    # RGB faces: the waveform is repeated over the colour channels side by side.
    rgb = _inputs(batch=1, channels=3, size=20, wave_size=32)
    side_rgb = _abstract(image_size=16, in_channels=3).combine(rgb)
    assert side_rgb.shape == (1, 16, 32, 3)
    np.testing.assert_array_equal(side_rgb[..., 16:, 0], side_rgb[..., 16:, 2])


def test_forward_uses_the_chosen_frame_and_the_waveform():
    model = _build(**TINY)
    model.eval()
    x = _inputs()
    logits = _forward(model, x)
    assert logits.shape == (4, 3) and logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
    # Frames other than the last are not read; the last frame and the waveform are.
    other = dict(x, frames=x["frames"].at[:, 0].set(0.0))
    np.testing.assert_array_equal(_forward(model, other), logits)
    last = dict(x, frames=x["frames"].at[:, -1].set(0.0))
    assert float(jnp.abs(_forward(model, last) - logits).max()) > 1e-6
    wave = dict(x, waveform_image=jnp.zeros_like(x["waveform_image"]))
    assert float(jnp.abs(_forward(model, wave) - logits).max()) > 1e-6


def test_dropout_follows_train_and_eval_mode():
    model = _build(**TINY)
    x = _inputs()
    model.eval()
    np.testing.assert_array_equal(_forward(model, x), _forward(model, x))
    model.train()
    assert float(jnp.abs(_forward(model, x) - _forward(model, x)).max()) > 1e-6


def test_config_errors():
    with pytest.raises(ConfigError, match="layout"):
        build_model("av_image_inception", num_classes=3, rngs=_rngs(), layout="overlay")
    with pytest.raises(ConfigError, match="divisible by 4"):
        build_model("av_image_inception", num_classes=3, rngs=_rngs(), stage_filters=(30,))
    with pytest.raises(ConfigError, match="in_channels"):
        _abstract(image_size=16).combine(_inputs(channels=3))


def test_parameter_count_of_default_model():
    model = nnx.eval_shape(lambda: AvImageInception(7, rngs=_rngs()))
    count = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))

    def block(cin, cout):  # 1x1 + (1x1, 3x3) + (1x1, 5x5) + pool 1x1, each with biases
        w = cout // 4
        return 4 * (cin * w + w) + (9 * w * w + w) + (25 * w * w + w)

    assert count == block(1, 32) + block(32, 64) + block(64, 128) + 128 * 7 + 7


def test_adam_steps_reduce_loss_on_a_fixed_batch():
    labels = jnp.array([0, 1, 0, 1])
    assert_adam_steps_fit(_build(**TINY), _inputs(batch=4, seed=1, labels=labels), cross_entropy(labels),
                          learning_rate=3e-3, steps=25, forward=_forward)


@pytest.mark.parametrize("images, key, channels", [(("face",), "frames", 3), (("waveform",), "waveform_image", 1)])
def test_one_image_builds_and_reads_only_its_own(images, key, channels):
    model = _abstract(**TINY, in_channels=3, images=images)
    assert model.input_keys == (key,)
    x = _inputs(channels=3)
    picture = x["frames"][:, -1] if key == "frames" else x["waveform_image"]
    # Only that input is handed over, so reading the other picture would fail here.
    np.testing.assert_array_equal(model.combine({key: x[key]}), picture)  # 16 x 16: no resizing
    out = nnx.eval_shape(lambda m, i: m(i), model, {key: x[key]})
    assert out.shape == (4, 3) and out.dtype == jnp.float32
    # The first stage sees that picture's channels only: 3 for the RGB face, 1 for the waveform.
    assert model.stages[0].branch1.kernel.shape == (1, 1, channels, 8)


def test_image_choice_mistakes_raise_config_error():
    for wrong in ((), ("face", "spectrogram")):
        with pytest.raises(ConfigError, match=r"av_image_inception: images must be a non-empty subset of \('face', 'waveform'\)"):
            _abstract(images=wrong)
