"""av_attention_fbp: the three frame aggregations against NumPy float64, masks, modes, learnability."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import build_model
from fer_jax.models.words_branch import WORD_FEATURES, WordsBranch
from fer_jax.models.av_attention import (
    AvAttentionFbp,
    RelationAttentionPool,
    SelfAttentionPool,
    TransformerAttentionPool,
)
from helpers.fitting import assert_adam_steps_fit, cross_entropy, masked_batch
from helpers.tolerance import assert_caught, assert_close, largest_param_flipped, output_tolerance


def _tolerance(expected):
    """float32 against float64 on N(0, 1) features: at most 6 chained layers (relation attention:
    score, sigmoid, weighted sum, then again on the joined 12 features), sums of up to 12 terms."""
    return output_tolerance(expected, terms=12, layers=6)


# A few narrow blocks and a small FBP: the same graph as the paper-size model, a fraction of the work.
TINY = dict(
    frame_backbone_kwargs={"blocks": ((4,), (8,))},
    audio_blocks=((4,), (8,)),
    attention_rank=4,
    fusion_kwargs={"out_dim": 8, "factor": 2},
)


def _rngs(seed=0):
    # rbg keys: XLA compiles threefry draws slowly on small CPUs; random init is not under test.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


@functools.cache
def _built(aggregation, **kwargs):
    return nnx.jit(
        lambda: build_model(
            "av_attention_fbp", num_classes=3, rngs=_rngs(), aggregation=aggregation, **TINY, **kwargs
        )
    )()


def _build(aggregation="self", **kwargs):
    # One jitted init per config for the whole file; each test gets its own copy to mutate.
    return nnx.clone(_built(aggregation, **kwargs))


_forward = nnx.jit(lambda model, inputs: model(inputs))
_pool = nnx.jit(lambda pool, f, mask: pool(f, mask))


def _inputs(batch=4, frames=4, size=16, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    video = rng.uniform(0, 1, (batch, frames, size, size, 1))
    audio = rng.normal(size=(batch, 20, 16, 3))
    if labels is not None:
        # A learnable batch: the class shifts both modalities.
        video = 0.5 * video + 0.25 * np.asarray(labels)[:, None, None, None, None]
        audio = audio + np.asarray(labels)[:, None, None, None]
    return masked_batch(video, 2, log_mel_deltas=audio)  # one clip of 2 real frames, padded to 4


# ---- NumPy float64 references of the aggregations (formulas in av_attention's docstring) ----


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np(param):
    return np.asarray(param[...], np.float64)


def _self_np(pool, f, mask):
    alpha = _sigmoid(f @ _np(pool.score.kernel)[:, 0] + _np(pool.score.bias)[0]) * mask
    return (alpha[..., None] * f).sum(1) / alpha.sum(1, keepdims=True), alpha


def _relation_np(pool, f, mask):
    v, alpha = _self_np(pool.self_attention, f, mask)
    joined = np.concatenate([f, np.broadcast_to(v[:, None], f.shape)], -1)
    beta = _sigmoid(joined @ _np(pool.score.kernel)[:, 0] + _np(pool.score.bias)[0])
    w = alpha * beta
    return (w[..., None] * joined).sum(1) / w.sum(1, keepdims=True)


def _transformer_np(pool, f, mask):
    q, k = f @ _np(pool.query.kernel), f @ _np(pool.key.kernel)
    out = np.zeros((f.shape[0], f.shape[2]))
    for b in range(f.shape[0]):
        valid = np.flatnonzero(mask[b])
        logits = q[b, valid] @ k[b, valid].T / np.sqrt(q.shape[-1])
        a = np.exp(logits - logits.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        out[b] = (a @ f[b, valid]).mean(0)
    return out


def _vector(output):
    # SelfAttentionPool also returns its weights alpha (relation attention reuses them).
    return np.asarray(output[0] if isinstance(output, tuple) else output, np.float64)


@pytest.mark.parametrize(
    "cls, reference",
    [(SelfAttentionPool, _self_np), (RelationAttentionPool, _relation_np), (TransformerAttentionPool, _transformer_np)],
    ids=["self", "relation", "transformer"],
)
def test_aggregation_matches_numpy_float64(cls, reference):
    pool = nnx.jit(lambda: cls(6, dropout=0.5, rngs=_rngs(1)))()
    pool.eval()  # dropout off: the references have none
    f = np.random.default_rng(0).normal(size=(3, 5, 6))
    mask = np.ones((3, 5), bool)
    mask[1, 3:] = False
    mask[2, 1:] = False  # a single real frame
    got = _pool(pool, jnp.asarray(f, jnp.float32), jnp.asarray(mask))
    expected = reference(pool, f, mask)
    assert _vector(got).shape == (3, 12 if cls is RelationAttentionPool else 6)
    tol = _tolerance(_vector(expected))
    assert_close(_vector(got), _vector(expected), tol)
    if cls is SelfAttentionPool:  # the weights too, zero on masked frames
        assert_close(np.asarray(got[1]), expected[1], tol)
    with largest_param_flipped(pool) as path:  # the reference with a weight in the wrong layout misses
        assert_caught(_vector(got), _vector(reference(pool, f, mask)), tol, f"{path} flipped")
    assert_caught(_vector(got), _vector(reference(pool, f, np.ones((3, 5), bool))), tol, "mask ignored")
    # Masked frames are ignored whatever they hold.
    garbage = jnp.asarray(np.where(mask[..., None], f, 1e3), jnp.float32)
    assert_close(_vector(_pool(pool, garbage, jnp.asarray(mask))), _vector(got), tol)
    # No mask: every frame counts.
    full = _pool(pool, jnp.asarray(f, jnp.float32), None)
    assert_close(_vector(full), _vector(reference(pool, f, np.ones((3, 5), bool))), tol)


def test_model_respects_frame_mask():
    # Relation attention runs self-attention inside it; each pool's masking is checked above.
    model = _build("relation")
    model.eval()
    x = _inputs()
    logits = _forward(model, x)
    assert logits.shape == (4, 3) and logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
    # Clip 0's padded frames can hold anything; real frames and the audio do matter.
    padded = dict(x, frames=x["frames"].at[0, 2:].set(1.0))
    # The same program on the same real frames: anything beyond float32 rounding is the padding leaking.
    assert_close(_forward(model, padded), logits, _tolerance(logits))
    real = dict(x, frames=x["frames"].at[0, 1].set(1.0))
    assert float(jnp.abs(_forward(model, real)[0] - logits[0]).max()) > 1e-6
    quiet = dict(x, log_mel_deltas=jnp.zeros_like(x["log_mel_deltas"]))
    assert float(jnp.abs(_forward(model, quiet) - logits).max()) > 1e-6


def test_dropout_follows_train_and_eval_mode():
    model = _build("relation")
    x = _inputs()
    model.eval()
    np.testing.assert_array_equal(_forward(model, x), _forward(model, x))
    model.train()
    assert float(jnp.abs(_forward(model, x) - _forward(model, x)).max()) > 1e-6


def _abstract(**kwargs):
    # Shapes only: nothing is drawn or compiled, which is all a config check needs.
    return nnx.eval_shape(lambda: build_model("av_attention_fbp", num_classes=3, rngs=_rngs(), **kwargs))


def test_fusion_and_aggregation_are_config_choices():
    assert type(_abstract(fusion="concat").fusion).__name__ == "ConcatFusion"
    assert type(_abstract(aggregation="transformer").aggregate).__name__ == "TransformerAttentionPool"
    with pytest.raises(ConfigError, match="aggregation"):
        _abstract(aggregation="mean")
    with pytest.raises(ConfigError, match="Unknown fusion"):
        _abstract(fusion="fpb")
    with pytest.raises(ConfigError, match="log_mel_deltas"):
        _abstract(**TINY)(dict(_inputs(), log_mel_deltas=jnp.zeros((4, 20, 16))))


def test_parameter_counts_of_default_models():
    counts = {}
    for aggregation in ("self", "relation", "transformer"):
        model = nnx.eval_shape(lambda: AvAttentionFbp(7, aggregation=aggregation, rngs=_rngs()))
        counts[aggregation] = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    # Relation attention doubles the video vector (1024) and so FBP's V; transformer adds 2 x 512 x 64.
    assert counts["relation"] - counts["self"] == (1024 + 1) + 512 * 5000
    assert counts["transformer"] - counts["self"] == 2 * 512 * 64 - (512 + 1)
    def vgg(c_in, blocks):  # 3x3 convs with biases
        total = 0
        for c_out in [c for block in blocks for c in block]:
            total, c_in = total + 9 * c_in * c_out + c_out, c_out
        return total

    frame_cnn = vgg(1, ((64, 64), (128, 128), (256, 256), (512, 512)))
    audio_cnn = vgg(3, ((32, 32), (64, 64), (128, 128), (256, 256)))
    fbp = (256 + 512) * 1000 * 5 + (1000 * 7 + 7)  # U, V (MFB's k = 5, o = 1000), classifier
    assert counts["self"] == frame_cnn + audio_cnn + (512 + 1) + fbp == 9_704_000


def test_adam_steps_reduce_loss_on_a_fixed_batch():
    labels = jnp.array([0, 1, 2, 1])
    # FBP's l2-normalised feature bounds the logits by the classifier's norm, so it takes a larger
    # step size than an unnormalised head to move them within a few steps.
    # ln(3) ~ 1.1 at start; about 0.4 after 30 steps.
    assert_adam_steps_fit(_build("relation"), _inputs(seed=1, labels=labels), cross_entropy(labels),
                          learning_rate=1e-2, steps=30, forward=_forward)


def test_words_are_a_third_branch_for_fusions_that_take_three():
    small = {k: v for k, v in TINY.items() if k != "fusion_kwargs"}
    model = nnx.jit(lambda: build_model("av_attention_fbp", num_classes=3, rngs=_rngs(), fusion="concat",
                                        words=True, words_width=8, **small))()
    model.eval()
    assert model.input_keys == ("frames", "log_mel_deltas", "word_features")
    assert model.fusion.in_dims[-1] == 8
    rng = np.random.default_rng(3)
    words = jnp.asarray(rng.normal(size=(4, 6, WORD_FEATURES)), jnp.float32)
    out = _forward(model, dict(_inputs(), word_features=words))
    assert out.shape == (4, 3)
    assert not np.allclose(out, _forward(model, dict(_inputs(), word_features=words.at[:, :, 0].add(1.0))))
    # Steps without speech (a zero embedding) are left out of the clip's mean.
    silent_steps = words.at[:, 3:].set(0.0)
    np.testing.assert_allclose(model.words(silent_steps), model.words(words[:, :3]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="2 branches"):
        _abstract(words=True)  # fbp fuses exactly two


def test_a_clip_without_speech_is_the_words_branch_of_zeros():
    branch = WordsBranch(4, rngs=_rngs())
    silent = jnp.zeros((2, 5, WORD_FEATURES))
    np.testing.assert_array_equal(branch(silent), nnx.relu(branch.project(jnp.zeros((2, WORD_FEATURES)))))


def _top_level_params(model):
    return {jax.tree_util.keystr(path[:1]) for path, _ in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))}


SMALL = {k: v for k, v in TINY.items() if k != "fusion_kwargs"}  # for fusions other than fbp


@pytest.mark.parametrize("modalities, keys, optional, modules", [
    (("video",), ("frames",), ("frame_mask",), {"['frame_cnn']", "['aggregate']", "['fusion']"}),
    (("audio",), ("log_mel_deltas",), (), {"['audio_cnn']", "['fusion']"}),
])
def test_one_modality_builds_and_reads_only_its_own(modalities, keys, optional, modules):
    model = _abstract(**SMALL, fusion="concat", modalities=modalities)
    assert (model.input_keys, model.optional_input_keys) == (keys, optional)
    assert _top_level_params(model) == modules  # no parameter of the other modality's CNN
    both = _abstract(**SMALL, fusion="concat")
    assert model.fusion.in_dims == tuple(d for d, m in zip(both.fusion.in_dims, ("audio", "video")) if m in modalities)
    # Only the listed inputs are handed over, so reading the other modality would fail here.
    only = {k: v for k, v in _inputs().items() if k in keys + optional}
    out = nnx.eval_shape(lambda m, i: m(i), model, only)
    assert out.shape == (4, 3) and out.dtype == jnp.float32


def test_one_modality_with_words_is_two_branches():
    model = _abstract(**TINY, modalities=("audio",), words=True, words_width=8)  # fbp: audio x words
    assert model.input_keys == ("log_mel_deltas", "word_features")
    assert model.fusion.in_dims == (8, 8)


def test_modality_mistakes_raise_config_error():
    for wrong in ((), ("video", "face")):
        with pytest.raises(ConfigError, match=r"av_attention_fbp: modalities must be a non-empty subset of \('audio', 'video'\)"):
            _abstract(modalities=wrong)
    # fbp fuses two branches; one modality must name its fusion rather than get one switched in.
    with pytest.raises(ConfigError, match="fusion 'fbp' takes 2 branches, but the model has 1 \\(video\\); use fusion='concat'"):
        _abstract(modalities=("video",))
