"""lemhi_cnn and cnn_ctslstm: segment pooling against NumPy, masks, modes, learnability."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import build_model
from fer_jax.models.lemhi import CnnCtsLstm, LemhiCnn, segment_means
from helpers.fitting import assert_adam_steps_fit, cross_entropy, masked_batch
from helpers.tolerance import assert_caught, assert_close, output_tolerance

TINY_BACKBONE = {"backbone_kwargs": {"blocks": ((4,), (8,))}}
TINY = {
    "lemhi_cnn": TINY_BACKBONE,
    "cnn_ctslstm": {**TINY_BACKBONE, "lstm_hidden": 8, "segments": 3},
}


def _rngs(seed=0):
    # rbg keys: XLA compiles threefry draws slowly on small CPUs; random init is not under test.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


@functools.cache
def _built(name):
    return nnx.jit(lambda: build_model(name, num_classes=3, rngs=_rngs(), **TINY[name]))()


def _build(name):
    # One jitted init per model for the whole file; each test gets its own copy to mutate.
    return nnx.clone(_built(name))


_forward = nnx.jit(lambda model, inputs: model(inputs))


def _inputs(batch=4, frames=6, size=16, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    video = rng.uniform(0, 1, (batch, frames, size, size, 1))
    lemhi = rng.uniform(0, 1, (batch, size, size, 1))
    if labels is not None:
        # A learnable batch: class 1 clips are brighter than class 0 ones.
        shift = 0.4 * np.asarray(labels, np.float64)
        video = 0.2 * video + shift[:, None, None, None, None]
        lemhi = 0.2 * lemhi + shift[:, None, None, None]
    return masked_batch(video, 4, lemhi=lemhi)  # a clip of 4 real frames, padded to 6


def test_segment_means_match_array_split_of_the_valid_frames():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(4, 7, 5))
    mask = np.ones((4, 7), bool)
    mask[1, 5:] = False  # 5 real frames
    mask[2] = [True, False, True, True, False, True, True]  # holes anywhere
    mask[3, 2:] = False  # 2 real frames for 3 segments: one segment is empty
    got = np.asarray(segment_means(jnp.asarray(f, jnp.float32), jnp.asarray(mask), 3))
    expected = np.zeros((4, 3, 5))
    for b in range(4):
        for k, part in enumerate(np.array_split(f[b, mask[b]], 3)):
            expected[b, k] = part.mean(0) if len(part) else 0.0
    tol = output_tolerance(expected, terms=7)  # float32 means of at most 7 N(0, 1) frames
    assert_close(got, expected, tol)
    # No mask: every frame counts (and the masked clips' means are not those).
    full = np.asarray(segment_means(jnp.asarray(f, jnp.float32), None, 3))
    assert_close(full[0], [p.mean(0) for p in np.array_split(f[0], 3)], tol)
    assert_caught(full[1:], expected[1:], tol, "padding averaged in")


@pytest.mark.parametrize("name", ["lemhi_cnn", "cnn_ctslstm"])
def test_forward_and_modes(name):
    model = _build(name)
    x = _inputs()
    model.eval()
    logits = _forward(model, x)
    assert logits.shape == (4, 3) and logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
    assert float(jnp.abs(logits[0] - logits[1]).max()) > 1e-6
    np.testing.assert_array_equal(_forward(model, x), logits)
    model.train()
    assert float(jnp.abs(_forward(model, x) - _forward(model, x)).max()) > 1e-6


def test_ctslstm_ignores_padded_frames_and_reads_real_ones():
    model = _build("cnn_ctslstm")
    model.eval()
    x = _inputs()
    logits = _forward(model, x)
    padded = dict(x, frames=x["frames"].at[0, 4:].set(1.0))
    np.testing.assert_allclose(_forward(model, padded), logits, rtol=1e-5, atol=1e-6)
    real = dict(x, frames=x["frames"].at[0, 3].set(1.0))
    assert float(jnp.abs(_forward(model, real)[0] - logits[0]).max()) > 1e-6


def test_config_errors():
    with pytest.raises(ConfigError, match="segments"):
        _build("cnn_ctslstm")(_inputs(frames=2))
    with pytest.raises(ConfigError, match="lemhi images"):
        _build("lemhi_cnn")({"lemhi": jnp.zeros((1, 16, 16, 3))})
    with pytest.raises(ConfigError, match="Unknown backbone"):
        nnx.eval_shape(lambda: build_model("lemhi_cnn", num_classes=3, rngs=_rngs(), backbone="vgg19"))


def test_parameter_counts_of_default_models():
    def count(cls):
        model = nnx.eval_shape(lambda: cls(7, rngs=_rngs()))
        return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))

    # torchvision's vgg16 `features` has 14,714,688 parameters on 3 input channels; ours read 1.
    vgg16_convs = 14_714_688 - 2 * 64 * 9
    assert count(LemhiCnn) == vgg16_convs + (512 * 7 + 7)
    lstm = 4 * 512 * (512 + 512) + 2 * 4 * 512  # torch layout: W_ih, W_hh, b_ih, b_hh
    assert count(CnnCtsLstm) == vgg16_convs + lstm + (512 * 7 + 7)


@pytest.mark.parametrize("name", ["lemhi_cnn", "cnn_ctslstm"])
def test_adam_steps_reduce_loss_on_a_fixed_batch(name):
    labels = jnp.array([0, 1, 0, 1])
    assert_adam_steps_fit(_build(name), _inputs(seed=1, labels=labels), cross_entropy(labels),
                          learning_rate=1e-2, steps=30, forward=_forward)
