"""Fusion layers: NumPy float64 references (to float32 rounding of each fusion's layers), shapes, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.fusion import FUSIONS, build_fusion, fusion_class
from helpers.tolerance import assert_caught, assert_close, output_tolerance

B, C = 4, 3
# One small configuration per fusion, shared by its reference test and the generic shape test so
# each is built and compiled once (compilation is most of these tests' time on a small CPU).
SMALL = {"attention": {"dim": 8}, "fbp": {"factor": 3, "out_dim": 4}}
DIMS = {"score": (C, C, C), "concat": (6, 5, 2), "attention": (6, 5, 2), "fbp": (6, 5)}


def _rngs(seed=0):
    # rbg only to keep CPU compile times low; the tests compare against the drawn weights.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _build(name, in_dims, **kwargs):
    fusion = nnx.jit(lambda: build_fusion(name, in_dims, C, rngs=_rngs(), **kwargs))()
    fusion.eval()  # references are dropout-free
    return fusion


@functools.cache
def _shared(name):
    """The SMALL fusion `name` for DIMS[name]; tests must not modify it."""
    return _build(name, DIMS[name], **SMALL.get(name, {}))


def _branches(dims, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal((B, d)) for d in dims]


def _np(param):
    return np.asarray(param[...], np.float64)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@functools.partial(nnx.jit, static_argnames="method")
def _apply(fusion, branches, method="__call__"):
    return getattr(fusion, method)(branches)


def _call(fusion, branches, method="__call__"):
    out = _apply(fusion, [jnp.asarray(x, jnp.float32) for x in branches], method=method)
    return jax.tree.map(np.asarray, out)


def _fbp_reference(a, v, U, V, factor, out_dim, head_kernel, head_bias):
    joint = (a @ U) * (v @ V)
    # SumPool_k written out: entry j sums the k consecutive products j*k ... j*k + k - 1.
    z = np.stack([joint[:, j * factor : (j + 1) * factor].sum(-1) for j in range(out_dim)], axis=-1)
    z = np.sign(z) * np.sqrt(np.abs(z))
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    return z @ head_kernel + head_bias


def test_fbp_matches_numpy_float64_reference():
    dims, factor, out_dim = DIMS["fbp"], SMALL["fbp"]["factor"], SMALL["fbp"]["out_dim"]
    fusion = _shared("fbp")
    a, v = _branches(dims)
    expected = _fbp_reference(
        a, v, _np(fusion.U.kernel), _np(fusion.V.kernel), factor, out_dim,
        _np(fusion.head.kernel), _np(fusion.head.bias),
    )
    got = _call(fusion, [a, v])
    assert got.shape == (B, C) and got.dtype == np.float32
    # Projections (6 terms), product, sum pool, signed sqrt, L2 norm, head over 4: 6 layers.
    tol = output_tolerance(expected, terms=6, layers=6)
    assert_close(got, expected, tol)
    wrong = _fbp_reference(  # U read in the wrong order (its input rows reversed)
        a, v, _np(fusion.U.kernel)[::-1], _np(fusion.V.kernel), factor, out_dim,
        _np(fusion.head.kernel), _np(fusion.head.bias),
    )
    assert_caught(got, wrong, tol, "fbp with U's rows reversed")


def test_fbp_normalised_feature_and_finite_gradient_at_zero():
    fusion = _shared("fbp")
    a, v = _branches(DIMS["fbp"], seed=1)
    z = _call(fusion, [a, v], method="pooled")
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, atol=1e-6)
    # A silent branch (all zeros) makes z = 0, where sqrt(|z|) has no finite slope: training on
    # such a clip must still give finite gradients.
    silent = [jnp.zeros((B, DIMS["fbp"][0])), jnp.asarray(v, jnp.float32)]
    grads = nnx.jit(nnx.grad(lambda f, xs: f(xs).sum()))(fusion, silent)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_score_fusion_fixed_weights_match_numpy():
    weights = np.array([[0.5, 1.0, 0.0], [0.25, 0.0, 2.0]])
    fusion = _build("score", (C, C), learnable=False, weights=weights.tolist())
    logits = _branches((C, C), seed=2, scale=2.0)
    expected = np.log(sum(w * _softmax(x) for w, x in zip(weights, logits)))
    # softmax over 3, a weighted sum of 2, a log: 3 layers of sums of 3.
    tol = output_tolerance(expected, terms=C, layers=3)
    assert_close(_call(fusion, logits), expected, tol)
    assert_caught(_call(fusion, logits), np.log(sum(w * _softmax(x) for w, x in zip(weights[::-1], logits))), tol,
                  "branch weights swapped")
    assert not jax.tree.leaves(nnx.state(fusion, nnx.Param))  # fixed weights are not trained


def test_score_fusion_learns_a_branch_by_class_matrix():
    fusion = _build("score", DIMS["score"])  # not _shared: this test trains it
    logits = _branches(DIMS["score"], seed=3, scale=2.0)
    # It starts as plain score averaging ...
    mean_scores = np.mean([_softmax(x) for x in logits], axis=0)
    assert_close(_softmax(_call(fusion, logits)), mean_scores, output_tolerance(mean_scores, terms=C, layers=4))
    # ... and its (branches, classes) weights train: trust branch 0, whose argmax is the label.
    labels = jnp.asarray(np.argmax(logits[0], -1))
    inputs = [jnp.asarray(x, jnp.float32) for x in logits]
    optimizer = nnx.Optimizer(fusion, optax.adam(0.1), wrt=nnx.Param)

    def loss_fn(fusion):
        return optax.softmax_cross_entropy_with_integer_labels(fusion(inputs), labels).mean()

    @nnx.jit
    def step(fusion, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(fusion)
        optimizer.update(fusion, grads)
        return loss

    first = float(step(fusion, optimizer))
    for _ in range(20):
        last = float(step(fusion, optimizer))
    assert last < 0.8 * first
    w = np.asarray(fusion.branch_weights())
    assert w.shape == (3, C) and np.allclose(w.sum(0), 1.0, atol=1e-6)
    assert np.all(w[0] >= w[1:].max(0) - 1e-6), w


def test_concat_fusion_matches_numpy():
    dims = DIMS["concat"]
    fusion = _shared("concat")
    xs = _branches(dims, seed=4)
    expected = np.concatenate(xs, -1) @ _np(fusion.head.kernel) + _np(fusion.head.bias)
    tol = output_tolerance(expected, terms=sum(dims))  # one dense layer over the concatenation
    assert_close(_call(fusion, xs), expected, tol)
    wrong = np.concatenate(xs[::-1], -1) @ _np(fusion.head.kernel) + _np(fusion.head.bias)
    assert_caught(_call(fusion, xs), wrong, tol, "branches concatenated in the wrong order")


def test_attention_fusion_matches_numpy():
    fusion = _shared("attention")
    xs = _branches(DIMS["attention"], seed=5)
    e = np.stack([np.tanh(x @ _np(p.kernel) + _np(p.bias)) for p, x in zip(fusion.projections, xs)], 1)
    hidden = np.tanh(e @ _np(fusion.attention_hidden.kernel) + _np(fusion.attention_hidden.bias))
    alpha = _softmax((hidden @ _np(fusion.attention_vector.kernel))[..., 0])
    expected = np.einsum("bn,bnd->bd", alpha, e) @ _np(fusion.head.kernel) + _np(fusion.head.bias)
    # Projection (<= 6 terms), hidden and vector (8), softmax and weighted sum (3), head (8): 6 layers.
    tol = output_tolerance(expected, terms=8, layers=6)
    assert_close(_call(fusion, xs), expected, tol)
    assert_close(_call(fusion, xs, method="attention")[0], alpha, output_tolerance(alpha, terms=8, layers=4))
    uniform = np.einsum("bn,bnd->bd", np.full_like(alpha, 1 / 3), e) @ _np(fusion.head.kernel) + _np(fusion.head.bias)
    assert_caught(_call(fusion, xs), uniform, tol, "attention left out (a plain mean)")


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_every_fusion_gives_float32_logits_per_example(name):
    # A new fusion needs a DIMS entry: its `reads` and `num_branches` decide what is valid there.
    cls, dims = fusion_class(name), DIMS[name]
    assert cls.num_branches in (None, len(dims)) and (cls.reads == "features" or set(dims) == {C})
    out = _call(_shared(name), _branches(dims, seed=6))
    assert out.shape == (B, C) and out.dtype == np.float32 and np.all(np.isfinite(out))


def test_config_mistakes_raise_config_error():
    with pytest.raises(ConfigError, match="Known fusions: .*attention.*concat.*fbp.*score"):
        build_fusion("scores", (C, C), C, rngs=_rngs())
    with pytest.raises(ConfigError, match="does not take factors"):
        build_fusion("fbp", (4, 5), C, rngs=_rngs(), factors=2)
    with pytest.raises(ConfigError, match="takes 2 branches, got 3"):
        build_fusion("fbp", (4, 5, 6), C, rngs=_rngs())
    with pytest.raises(ConfigError, match="logits of width 3"):
        build_fusion("score", (C, 8), C, rngs=_rngs())
    with pytest.raises(ConfigError, match="weights must be >= 0"):
        build_fusion("score", (C, C), C, rngs=_rngs(), weights=[1.0, -1.0])
    with pytest.raises(ConfigError, match=r"built for branches \(B, d\) with d = \(6, 5, 2\)"):
        _shared("concat")([jnp.zeros((B, 6)), jnp.zeros((B, 5)), jnp.zeros((B, 3))])
