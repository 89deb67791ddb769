"""MSFF models: shapes, train/eval modes, masks, fusion swapping, paper-size parameter counts,
config errors, and that a few Adam steps fit a tiny batch. Tiny widths: 4 frames of 32x32."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from fer_jax.models.msff import BRANCH_MODELS  # (importing it registers the msff models)
from fer_jax.errors import ConfigError
from fer_jax.models.fusion import FUSIONS
from fer_jax.models.registry import build_model
from helpers.fitting import FAST_COMPILE, forward_keeping_state

B, T, SIZE, T_AUDIO, N_FREQ, CLASSES = 4, 4, 32, 32, 16, 4
TINY_VGG = {"blocks": ((8,),), "batch_norm": True}
# dropout 0: on 8-unit layers and 4 examples it only makes the short fitting test noisy; the mode
# test switches it on. The same tiny branches make up TINY["msff"].
TINY = {
    "msff_cnn_blstm": {"backbone": "vgg", "backbone_options": TINY_VGG, "lstm_hidden": 8,
                       "use_frame_mask": True, "dropout": 0.0},
    "msff_c3d": {"frames": T, "size": SIZE, "conv_blocks": ((4,), (8,)),
                 "pool_windows": ((1, 2, 2), (2, 2, 2)), "fc_features": (16,), "dropout": 0.0},
    "msff_audio_vgg_blstm": {"n_freq": N_FREQ, "conv_blocks": ((8,),), "lstm_hidden": 8,
                             "dropout": 0.0},
}
TINY["msff"] = {
    "cnn_blstm": TINY["msff_cnn_blstm"], "c3d": TINY["msff_c3d"], "audio": TINY["msff_audio_vgg_blstm"]
}



def _rngs(seed=0):
    # rbg only to keep CPU compile times low: random init is not what these tests are about.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _build(name, **kwargs):
    # Built inside one compile (eagerly every initialiser would compile on its own), unoptimised.
    def create():
        return build_model(name, num_classes=CLASSES, rngs=_rngs(), **kwargs)

    state = jax.jit(lambda: nnx.state(create()), compiler_options=FAST_COMPILE)()
    return nnx.merge(nnx.graphdef(nnx.eval_shape(create)), state)


def _abstract(name, **kwargs):
    return nnx.eval_shape(lambda: build_model(name, num_classes=CLASSES, rngs=_rngs(), **kwargs))


def _inputs(seed=0, lengths=(T, T, 3, 2)):
    rng = np.random.default_rng(seed)
    # Each clip is its own coarse colour pattern (4x4 blocks of 8x8 pixels) plus noise: iid pixel
    # noise alone would average out in a globally pooled backbone and leave nothing to learn.
    pattern = rng.uniform(0, 1, (B, 1, SIZE // 8, SIZE // 8, 3)).repeat(8, axis=2).repeat(8, axis=3)
    frames = np.clip(0.8 * pattern + 0.2 * rng.uniform(0, 1, (B, T, SIZE, SIZE, 3)), 0, 1)
    return {
        "frames": jnp.asarray(frames, jnp.float32),
        "frame_mask": jnp.asarray(np.arange(T)[None, :] < np.array(lengths)[:, None]),
        "log_mel": jnp.asarray(rng.standard_normal((B, T_AUDIO, N_FREQ)) - 4.0, jnp.float32),
        "log_mel_deltas": jnp.asarray(rng.standard_normal((B, T_AUDIO, N_FREQ, 3)), jnp.float32),
    }




def _n_params(model):
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_adam_steps_fit_a_tiny_batch_with_every_model():
    """All four registered models learn, in one compiled step: msff is trained on its fused loss
    plus each branch's own loss (deep supervision), so each branch's parameters get the gradient
    of that branch's classifier, exactly what training the branch alone would follow. (Four
    separate compiles would cost about twice the CPU time on a small machine.)"""

    def create():
        model = build_model("msff", num_classes=CLASSES, rngs=_rngs(), **TINY["msff"])
        return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    # The trainer's functional pattern (split once, jit a pure step, merge inside), with XLA's
    # backend optimisation off: this tiny program compiles in about half the time and runs 25 steps.
    graphdef = nnx.graphdef(nnx.eval_shape(create))
    state = jax.jit(lambda: nnx.state(create()), compiler_options=FAST_COMPILE)()
    model, optimizer = nnx.merge(graphdef, state)
    model.train()  # batch statistics on, as in real training
    graphdef, state = nnx.split((model, optimizer))
    inputs = {k: _inputs(1)[k] for k in model.input_keys}
    labels = jnp.arange(B) % CLASSES

    def loss_fn(model):
        fused, branches = model.logits_with_branches(inputs)
        losses = {"msff": fused, **{f"msff_{k}": v for k, v in branches.items()}}
        losses = {
            k: optax.softmax_cross_entropy_with_integer_labels(v, labels).mean() for k, v in losses.items()
        }
        return sum(losses.values()), losses

    # The batch is an argument, not a closure: XLA would constant-fold the network on a captured
    # batch and take about twice as long to compile.
    @functools.partial(jax.jit, donate_argnums=0, compiler_options=FAST_COMPILE)
    def train_step(state, inputs, labels):
        model, optimizer = nnx.merge(graphdef, state)
        (_, losses), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), losses

    logits = nnx.eval_shape(lambda m, x: m(x), model, inputs)  # traced, not compiled
    assert logits.shape == (B, CLASSES) and logits.dtype == jnp.float32
    history = []
    for _ in range(25):
        state, losses = train_step(state, inputs, labels)
        history.append(jax.device_get(losses))
    # Each loss is the one before that step's update. ln(4) ~ 1.39 at the start; 4 fixed examples
    # must be fitted clearly. Training-mode losses: with BatchNorm, evaluation mode would also
    # test how far 25 steps move the running averages, which is not the point here.
    assert set(history[0]) == {"msff", "msff_cnn_blstm", "msff_c3d", "msff_audio"}
    for name in history[0]:
        curve = [float(h[name]) for h in history]
        assert np.all(np.isfinite(curve)) and curve[-1] < 0.6 * curve[0], (name, curve)


@pytest.fixture(scope="module")
def cnn_blstm():
    # With dropout (unlike TINY's), so one model shows both dropout and BatchNorm switching mode.
    return _build("msff_cnn_blstm", **{**TINY["msff_cnn_blstm"], "dropout": 0.5})


def test_batch_norm_and_dropout_follow_train_and_eval_mode(cnn_blstm):
    model = nnx.clone(cnn_blstm)
    x, other = _inputs(0), _inputs(2)
    mates = dict(x, frames=x["frames"].at[1:].set(other["frames"][1:]))  # clip 0 kept, the rest new
    model.eval()
    stats = jax.tree.leaves(nnx.clone(nnx.state(model, nnx.BatchStat)))

    def stats_moved():
        now = jax.tree.leaves(nnx.state(model, nnx.BatchStat))
        return any(not np.array_equal(a, b) for a, b in zip(stats, now))

    # Evaluation: no dropout and BatchNorm's running averages, so a clip's logits are repeatable
    # and do not depend on its batch-mates; nothing is updated.
    np.testing.assert_array_equal(forward_keeping_state(model, x), forward_keeping_state(model, x))
    np.testing.assert_allclose(forward_keeping_state(model, x)[0], forward_keeping_state(model, mates)[0], atol=1e-6)
    assert not stats_moved()
    # Training: a fresh dropout mask per call (BatchNorm alone would repeat on the same batch),
    # and the running averages move.
    model.train()
    assert float(jnp.abs(forward_keeping_state(model, x) - forward_keeping_state(model, x)).max()) > 1e-6
    assert stats_moved()


def test_padded_frames_change_nothing_with_frame_mask(cnn_blstm):
    model = nnx.clone(cnn_blstm)
    assert model.input_keys == ("frames", "frame_mask")
    model.eval()
    x = _inputs()
    noisy = dict(x, frames=jnp.where(x["frame_mask"][..., None, None, None], x["frames"], 1.0 - x["frames"]))
    np.testing.assert_allclose(forward_keeping_state(model, noisy), forward_keeping_state(model, x), atol=1e-6)
    # Sanity: the same change on a real frame does move the logits.
    moved = dict(x, frames=x["frames"].at[:, 0].set(1.0 - x["frames"][:, 0]))
    assert float(jnp.abs(forward_keeping_state(model, moved) - forward_keeping_state(model, x)).max()) > 1e-5


@pytest.mark.parametrize("feature", ["log_mel_deltas", "linear_spectrogram"])
def test_audio_branch_reads_the_named_feature(feature):
    model = _abstract("msff_audio_vgg_blstm", **TINY["msff_audio_vgg_blstm"], feature=feature)
    assert model.input_keys == (feature,)
    x = _inputs()
    x["linear_spectrogram"] = x["log_mel"]
    out = nnx.eval_shape(lambda m, i: m(i), model, {feature: x[feature]})
    assert out.shape == (B, CLASSES) and out.dtype == jnp.float32


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_msff_fusion_is_one_config_line(fusion):
    # Shapes only (eval_shape traces, compiles nothing); the Adam test runs the default "score".
    model = _abstract("msff", **TINY["msff"], fusion=fusion)
    assert type(model.fusion) is FUSIONS[fusion]
    assert model.input_keys == ("frames", "frame_mask", "log_mel")
    out = nnx.eval_shape(lambda m, i: m(i), model, _inputs())
    assert out.shape == (B, CLASSES) and out.dtype == jnp.float32
    _, branches = nnx.eval_shape(lambda m, i: m.logits_with_branches(i), model, _inputs())
    expected = dict.fromkeys(("cnn_blstm", "c3d", "audio"), (B, CLASSES))
    assert {k: v.shape for k, v in branches.items()} == expected


def test_parameter_counts_of_paper_size_branches():
    # C3D at 16x112x112x3: 8 convs 27,655,936 + fc6 (4*4*1*512 = 8192 -> 4096) 33,558,528
    # + fc7 16,781,312 + head 4096*4+4 = 78,012,164 (C3D's published ~78M).
    assert _n_params(_abstract("msff_c3d")) == 78_012_164
    # ResNet-18 without fc 11,176,512 + BLSTM 2 * 4*128*(512+128+2) = 657,408 + head 256*4+4.
    assert _n_params(_abstract("msff_cnn_blstm")) == 11_176_512 + 657_408 + 1_028
    # Audio VGG (64,64,128,128,256,256,512,512 3x3 convs 4,684,224 + BN 3,840) at 300 x 64 log-mel:
    # 64 bins / 16 = 4 per step x 512 channels -> BLSTM 2 * 4*128*(2048+128+2) = 2,230,272; + head.
    assert _n_params(_abstract("msff_audio_vgg_blstm")) == 4_688_064 + 2_230_272 + 1_028


def test_config_mistakes_raise_config_error():
    with pytest.raises(ConfigError, match="msff_c3d' does not take conv_block"):
        _abstract("msff", **{**TINY["msff"], "c3d": {"conv_block": ((4,),)}})
    with pytest.raises(ConfigError, match="Unknown fusion 'sum'"):
        _abstract("msff", **TINY["msff"], fusion="sum")
    with pytest.raises(ConfigError, match="pooling must be one of"):
        _abstract("msff_cnn_blstm", pooling="max")
    with pytest.raises(ConfigError, match="Unknown backbone 'resnet34'"):
        _abstract("msff_cnn_blstm", backbone="resnet34")
    with pytest.raises(ConfigError, match="frequency bins down to nothing"):
        _abstract("msff_audio_vgg_blstm", n_freq=8)
    with pytest.raises(ConfigError, match="feature must be one of"):
        _abstract("msff_audio_vgg_blstm", feature="mfcc")
    c3d = _abstract("msff_c3d", **TINY["msff_c3d"])
    with pytest.raises(ConfigError, match="frames of shape"):
        nnx.eval_shape(lambda m, i: m(i), c3d, {"frames": jnp.zeros((B, T, 16, 16, 3))})
    audio = _abstract("msff_audio_vgg_blstm", **TINY["msff_audio_vgg_blstm"])
    with pytest.raises(ConfigError, match="set n_freq"):
        nnx.eval_shape(lambda m, i: m(i), audio, {"log_mel": jnp.zeros((B, T_AUDIO, 40))})


def test_bfloat16_compute_keeps_float32_parameters_and_logits():
    # Traced only: the dtype plumbing of every branch and of a feature fusion, not bf16 numerics.
    model = _abstract("msff", **TINY["msff"], fusion="fbp", dtype=jnp.bfloat16)
    assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float32)}
    out = nnx.eval_shape(lambda m, i: m(i), model, _inputs())
    assert out.shape == (B, CLASSES) and out.dtype == jnp.float32


def _param_tree(model):
    return {jax.tree_util.keystr(path): leaf.shape
            for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))}


@pytest.mark.parametrize("branches, fusion, keys", [
    (("cnn_blstm", "c3d"), "score", ("frames", "frame_mask")),  # video only
    (("audio",), "score", ("log_mel",)),  # audio only
    (("audio", "c3d"), "fbp", ("frames", "log_mel")),  # any order; C3D reads no mask
    (("c3d",), "attention", ("frames",)),
])
def test_msff_branches_build_and_read_only_the_named_ones(branches, fusion, keys):
    model = _abstract("msff", **TINY["msff"], branches=branches, fusion=fusion)
    assert model.input_keys == keys
    # Only the listed inputs are handed over, so a branch reading another one would fail here.
    only = {k: v for k, v in _inputs().items() if k in keys}
    fused, per_branch = nnx.eval_shape(lambda m, i: m.logits_with_branches(i), model, only)
    assert fused.shape == (B, CLASSES) and set(per_branch) == set(branches)
    # No parameter of a branch left out: the tree is the built branches' own plus the fusion's.
    alone = sum(_n_params(_abstract(BRANCH_MODELS[name], **TINY[BRANCH_MODELS[name]])) for name in branches)
    tops = {path.split("]")[0] + "]" for path in _param_tree(model)}
    assert tops == {f"['{name}']" for name in branches} | {"['fusion']"}
    assert _n_params(model) == alone + _n_params(model.fusion)


def test_msff_default_is_all_three_branches_whatever_their_order():
    default = _abstract("msff", **TINY["msff"])
    assert default.branches == ("cnn_blstm", "c3d", "audio")
    reordered = _abstract("msff", **TINY["msff"], branches=("audio", "c3d", "cnn_blstm"))
    assert _param_tree(reordered) == _param_tree(default)
    # `--set model.kwargs.branches=audio` hands over a bare string: one branch, not five letters.
    assert _abstract("msff", **TINY["msff"], branches="audio").branches == ("audio",)
    branch_params = sum(_n_params(getattr(default, name)) for name in default.branches)
    assert _n_params(default) == branch_params + 3 * CLASSES  # score fusion: one weight per branch and class


def test_msff_score_fusion_of_one_branch_is_that_branchs_softmax():
    model = _build("msff", **TINY["msff"], branches=("audio",))
    model.eval()
    fused, per_branch = nnx.jit(lambda m, i: m.logits_with_branches(i))(model, {"log_mel": _inputs()["log_mel"]})
    # Score fusion returns log(w * softmax) with w = 1: float32 softmax and log each round to a
    # few ulps (~1e-7) of values of order 1; 1e-5 leaves room for the exp of logits up to ~10.
    np.testing.assert_allclose(fused, jax.nn.log_softmax(per_branch["audio"]), atol=1e-5)


def test_msff_branch_choice_mistakes_raise_config_error():
    for wrong in ((), ("c3d", "video"), ("c3d", "c3d")):
        with pytest.raises(ConfigError, match=r"msff: branches must be a non-empty subset of \('cnn_blstm', 'c3d'"):
            _abstract("msff", **TINY["msff"], branches=wrong)
    for unpaired in (("cnn_blstm", "c3d"), ("audio",)):
        with pytest.raises(ConfigError, match="fuses visual against audio features, so branches needs 'audio'"):
            _abstract("msff", **TINY["msff"], branches=unpaired, fusion="fbp")
