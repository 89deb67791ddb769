"""The 3D-CNN + ConvLSTM model and the registry: shapes, train/eval modes, errors, learnability."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import MODELS, build_model
from fer_jax.models.cnn3d_convlstm import Cnn3dConvLstm
from helpers.fitting import assert_adam_steps_fit, cross_entropy
from helpers.tolerance import assert_caught, assert_close, output_tolerance, rounding_tolerance


def _rngs(seed=0):
    # The rbg PRNG only to keep CPU compile times low: XLA compiles a threefry draw in seconds per
    # shape on small CPUs, and random init is not what these tests are about.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _build(**kwargs):
    # One jitted init compiles once, instead of one eager compile per parameter shape.
    return nnx.jit(lambda: build_model("cnn3d_convlstm", num_classes=7, rngs=_rngs(), **kwargs))()


# One jitted forward for the whole file: it caches a compile per model structure and mode.
_forward = nnx.jit(lambda model, inputs: model(inputs))


def _clips(batch, frames=8, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return {"frames": jnp.asarray(rng.uniform(0, 1, (batch, frames, size, size, 1)), jnp.float32)}


@pytest.fixture(scope="module")
def default_model():
    return _build()


def test_forward_gives_finite_logits_per_clip(default_model):
    model = nnx.clone(default_model)
    assert isinstance(model, Cnn3dConvLstm) and model.input_keys == ("frames",)
    model.eval()
    logits = _forward(model, _clips(2))
    assert logits.shape == (2, 7) and logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))
    # The two clips differ, so must their logits: a network that ignored its input would not.
    assert float(jnp.abs(logits[0] - logits[1]).max()) > 1e-6


def test_dropout_follows_train_and_eval_mode(default_model):
    model = nnx.clone(default_model)
    x = _clips(2)
    model.eval()
    eval_a, eval_b = _forward(model, x), _forward(model, x)
    np.testing.assert_array_equal(eval_a, eval_b)
    model.train()
    train_a, train_b = _forward(model, x), _forward(model, x)
    # Training draws a fresh mask on every call; evaluation uses none.
    assert float(jnp.abs(train_a - train_b).max()) > 1e-6
    assert float(jnp.abs(train_a - eval_a).max()) > 1e-6


def test_parameter_count_of_default_model(default_model):
    # 3 Conv3D (896 + 27,680 + 55,360) + ConvLSTM (36,864 + 9,216 + 64) + Dense (8*8*16*7 + 7).
    params = nnx.state(default_model, nnx.Param)
    assert sum(p.size for p in jax.tree.leaves(params)) == 137_255


def test_convlstm_is_unrolled_by_default_and_computes_what_the_loop_computes():
    """Unrolled (the default), the ConvLSTM's gradient program has no loop, inside which XLA would
    all-reduce the recurrent kernel's gradient at every time step of a data-parallel step; with
    convlstm_unroll=1 the loop is there. Both compute the same loss and gradients."""
    small = dict(frames=8, size=16, conv_features=(2, 2, 2), convlstm_filters=2, dropout=0.0)
    x = _clips(2, size=16)

    def loss(model):
        return jnp.sum(model(x) ** 2)

    results = {}
    for unroll in (None, 1):
        model = _build(convlstm_unroll=unroll, **small)  # the same seed: the same parameters
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        grad = jax.jit(jax.value_and_grad(lambda p: loss(nnx.merge(graphdef, p, rest))))
        results[unroll] = grad(params)
        assert ("stablehlo.while" in grad.lower(params).as_text()) == (unroll == 1), unroll
    (unrolled_loss, unrolled_grads), (rolled_loss, rolled_grads) = results[None], results[1]
    # Sums of up to 2 x 8 x 16 x 16 positions (the first kernel's gradient) through 5 layers.
    assert_close(unrolled_loss, rolled_loss, output_tolerance(rolled_loss, terms=4096, layers=5), "loss")
    for got, expected in zip(jax.tree.leaves(unrolled_grads), jax.tree.leaves(rolled_grads)):
        assert_close(got, expected, output_tolerance(expected, terms=4096, layers=5), "gradient")


def test_unknown_model_name_lists_known_ones():
    with pytest.raises(ConfigError, match="Known models: .*cnn3d_convlstm"):
        build_model("cnn3d_convlstn", num_classes=7, rngs=_rngs())
    assert "cnn3d_convlstm" in MODELS


def test_config_mistakes_raise_config_error(default_model):
    with pytest.raises(ConfigError, match="does not take pool_window.*pool_windows"):
        build_model("cnn3d_convlstm", num_classes=7, rngs=_rngs(), pool_window=((2, 2, 2),))
    with pytest.raises(ConfigError, match="pool_windows"):  # 2 frames pooled by 2 twice: nothing left
        build_model("cnn3d_convlstm", num_classes=7, rngs=_rngs(), frames=2)
    with pytest.raises(ConfigError, match="frames of shape"):
        default_model(_clips(1, size=32))


def test_adam_steps_reduce_loss_on_a_fixed_batch():
    # 32x32 clips: the same network, a quarter of the CPU time per step.
    # ln(7) ~ 1.95 at start; fitting 4 fixed clips must cut that clearly (about 0.7 after 15 steps).
    labels = jnp.array([0, 1, 0, 1])
    assert_adam_steps_fit(_build(size=32), _clips(4, size=32, seed=1), cross_entropy(labels), learning_rate=1e-3,
                          steps=15)


def test_standardized_clips_ignore_brightness_and_contrast():
    """With standardize_clips, an affine change of a clip's pixels leaves the logits unchanged."""
    @nnx.jit
    def create():
        return Cnn3dConvLstm(3, frames=4, size=16, conv_features=(4, 4, 4), standardize_clips=True,
                             rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))

    model = create()
    model.eval()
    clip = np.random.default_rng(0).uniform(0, 1, size=(2, 4, 16, 16, 1)).astype(np.float32)
    brighter = 0.5 * clip + 0.3
    a = model({"frames": jnp.asarray(clip)})
    b = model({"frames": jnp.asarray(brighter)})
    # Standardising divides by sqrt(var + 1e-6), so the two clips come out scaled by factors that
    # differ by 0.5e-6 |1/var' - 1/var| (1.8e-5 here); then float32 rounding of the mean and
    # variance over the clip's 1024 values, relative to how far pixels lie from the mean in standard
    # deviations. Standardised activations are O(1), so these relative errors bound the logits'.
    tol = _standardized_tolerance(clip, brighter)
    assert_close(a, b, tol)
    model.standardize_clips = False  # the same comparison without the standardisation fails
    assert_caught(model({"frames": jnp.asarray(clip)}), model({"frames": jnp.asarray(brighter)}), tol,
                  "not standardised")


def _standardized_tolerance(clip, brighter):
    axes = tuple(range(1, clip.ndim))
    variances = [v.var(axis=axes) for v in (clip, brighter)]
    epsilon_shift = 0.5e-6 * float(np.max(np.abs(1 / variances[1] - 1 / variances[0])))
    spread = float(np.max(np.abs(clip - clip.mean(axis=axes, keepdims=True)) / np.sqrt(variances[0]).max()))
    return epsilon_shift + rounding_tolerance(terms=clip[0].size, scale=spread)


# The other video models with the option (`layers.standardize_clips`), small; the option's name.
_STANDARDIZING = {
    "msff_cnn_blstm": ({"backbone": "vgg", "backbone_options": {"blocks": ((4,),)}, "lstm_hidden": 4,
                        "in_channels": 1}, "standardize_clips"),
    "msff_c3d": ({"frames": 4, "size": 16, "in_channels": 1, "conv_blocks": ((4,),), "pool_windows": ((2, 4, 4),),
                  "fc_features": (8,)}, "standardize_clips"),
    "av_attention_fbp": ({"modalities": ["video"], "fusion": "concat", "frame_backbone_kwargs": {"blocks": ((4,),)},
                          "attention_rank": 4}, "standardize_clips"),
    "cnn_ctslstm": ({"backbone": "vgg", "backbone_kwargs": {"blocks": ((4,),)}, "lstm_hidden": 4, "segments": 2},
                    "standardize_clips"),
    "av_image_inception": ({"images": ["face"], "image_size": 16, "stage_filters": (4,)}, "standardize_face"),
}


@pytest.mark.parametrize("name", sorted(_STANDARDIZING))
def test_every_standardizing_video_model_ignores_brightness_and_contrast(name):
    kwargs, option = _STANDARDIZING[name]
    model = nnx.jit(lambda: build_model(name, num_classes=3, rngs=_rngs(), **kwargs, **{option: True}))()
    model.eval()
    clip = np.random.default_rng(1).uniform(0, 1, size=(2, 4, 16, 16, 1)).astype(np.float32)
    brighter = 0.5 * clip + 0.3
    # av_image_inception standardises one face picture, not the clip: the tolerance of its frame.
    frame = clip[:, -1] if name == "av_image_inception" else clip
    tol = _standardized_tolerance(frame, 0.5 * frame + 0.3)
    assert_close(_forward(model, {"frames": jnp.asarray(clip)}), _forward(model, {"frames": jnp.asarray(brighter)}),
                 tol, name)
    setattr(model, option, False)
    assert_caught(_forward(model, {"frames": jnp.asarray(clip)}), _forward(model, {"frames": jnp.asarray(brighter)}),
                  tol, f"{name} not standardised")
