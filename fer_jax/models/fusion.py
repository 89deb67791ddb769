"""Fusion layers: per-branch tensors [(B, d_i), ...] -> fused logits (B, num_classes) float32.

Every fusion layer shares one interface, so a multi-branch model picks one by name and a new layer
is one class plus `@register_fusion("name")`:

    __init__(self, in_dims: Sequence[int], num_classes: int, *, <options>, dtype, rngs)
    __call__(self, branches: Sequence[jax.Array]) -> (B, num_classes) float32 logits
    reads: "features" or "logits"   what the caller must hand over from each branch
    num_branches: int | None        how many branches it takes (None: any number >= 1)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fer_jax.errors import ConfigError

FUSIONS: dict[str, type[nnx.Module]] = {}

_C = TypeVar("_C", bound=type)


def register_fusion(name: str) -> Callable[[_C], _C]:
    """Class decorator that makes `build_fusion(name, ...)` construct the decorated fusion layer."""

    def decorator(cls: _C) -> _C:
        previous = FUSIONS.get(name)
        if previous is not None and previous.__qualname__ != cls.__qualname__:
            raise ValueError(f"Fusion {name!r} is already registered to {previous.__qualname__}.")
        FUSIONS[name] = cls
        return cls

    return decorator


def fusion_class(name: str) -> type[nnx.Module]:
    """The class registered as `name` (its `reads` and `num_branches` say what to feed it)."""
    if name not in FUSIONS:
        raise ConfigError(f"Unknown fusion {name!r}. Known fusions: {', '.join(sorted(FUSIONS))}.")
    return FUSIONS[name]


def build_fusion(
    name: str, in_dims: Sequence[int], num_classes: int, *, rngs: nnx.Rngs, **kwargs: Any
) -> nnx.Module:
    """Builds fusion `name` for branches of widths `in_dims`; kwargs go to its constructor.

    Raises ConfigError for an unknown name, unknown options or the wrong number of branches, so a
    config typo fails at start-up rather than inside a jitted step.
    """
    cls = fusion_class(name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "in_dims", "num_classes", "rngs"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"Fusion {name!r} does not take {', '.join(unknown)}. "
            f"Its options are: {', '.join(sorted(accepted))}."
        )
    in_dims = tuple(int(d) for d in in_dims)
    if not in_dims or (cls.num_branches is not None and len(in_dims) != cls.num_branches):
        expected = cls.num_branches or "at least 1"
        raise ConfigError(f"Fusion {name!r} takes {expected} branches, got {len(in_dims)} ({in_dims}).")
    return cls(in_dims, num_classes, rngs=rngs, **kwargs)


def _check_branches(module: nnx.Module, branches: Sequence[jax.Array]) -> None:
    dims = tuple(b.shape[-1] for b in branches)
    if dims != module.in_dims or any(b.ndim != 2 for b in branches):
        raise ConfigError(
            f"{type(module).__name__} was built for branches (B, d) with d = {module.in_dims}, "
            f"got shapes {[tuple(b.shape) for b in branches]}."
        )


@register_fusion("score")
class ScoreFusion(nnx.Module):
    """Score-matrix fusion (MSFF, Lu et al. 2018): a weighted sum of per-branch softmax scores.

    Branch n gives logits (B, C); with p_n = softmax(logits_n) the fused score of class c is
        s_c = Σ_n W[n, c] · p_n[c]
    and the output is log(s), so softmax(output) = s / Σ_c s_c and the argmax is the argmax of s.

    learnable=True: W = softmax over branches of a trained (branches, classes) matrix, which keeps
      each class's weights positive and summing to 1, so the matrix says how far to trust each
      branch for each class. It starts at `weights` (normalised per class) or uniform.
    learnable=False: W = `weights` as given ((branches,) or (branches, classes), >= 0), kept as a
      non-trainable variable; uniform (plain score averaging) if not given.
    """

    reads = "logits"
    num_branches = None

    def __init__(
        self,
        in_dims: Sequence[int],
        num_classes: int,
        *,
        learnable: bool = True,
        weights: Sequence[float] | Sequence[Sequence[float]] | None = None,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        del dtype, rngs  # no matmul to run in a lower dtype; nothing random to draw
        self.in_dims = tuple(in_dims)
        if any(d != num_classes for d in self.in_dims):
            raise ConfigError(
                f"score fusion reads per-branch logits of width {num_classes}, got widths {self.in_dims}."
            )
        n = len(self.in_dims)
        # NumPy, not jnp: these are config checks, and under jit every jnp value is a tracer.
        w = np.full((n, num_classes), 1.0 / n) if weights is None else np.asarray(weights, np.float64)
        if w.ndim == 1 and w.shape[0] == n:
            w = np.broadcast_to(w[:, None], (n, num_classes))
        if w.shape != (n, num_classes) or np.any(w < 0):
            raise ConfigError(
                f"score fusion: weights must be >= 0 with shape ({n},) or ({n}, {num_classes}), "
                f"got {np.asarray(weights).tolist()}."
            )
        self.learnable = learnable
        if learnable:
            if np.any(w.sum(0) <= 0):
                raise ConfigError("score fusion: every class needs a positive weight on some branch.")
            # A zero starting weight becomes a very negative logit (not -inf) so it can still be learned.
            start = np.log(np.maximum(w / w.sum(0, keepdims=True), 1e-12))
            self.weight_logits = nnx.Param(jnp.asarray(start, jnp.float32))
        else:
            self.weights = nnx.Variable(jnp.asarray(w, jnp.float32))

    def branch_weights(self) -> jax.Array:
        """(branches, classes): the W that multiplies the branch scores."""
        if self.learnable:
            return jax.nn.softmax(self.weight_logits[...], axis=0)
        return self.weights[...]

    def __call__(self, branches: Sequence[jax.Array]) -> jax.Array:
        _check_branches(self, branches)
        scores = jnp.stack([jax.nn.softmax(b.astype(jnp.float32), axis=-1) for b in branches], axis=0)
        fused = jnp.einsum("nbc,nc->bc", scores, self.branch_weights())
        # The floor keeps log finite (and its gradient bounded) where every weight of a class is 0.
        return jnp.log(jnp.maximum(fused, 1e-30))


@register_fusion("concat")
class ConcatFusion(nnx.Module):
    """Concatenate branch features (B, Σ d_i) -> dropout -> [dense(hidden) -> ReLU -> dropout] -> dense."""

    reads = "features"
    num_branches = None

    def __init__(
        self,
        in_dims: Sequence[int],
        num_classes: int,
        *,
        hidden: int | None = None,
        dropout: float = 0.0,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.in_dims = tuple(in_dims)
        width = sum(self.in_dims)
        self.hidden = nnx.Linear(width, hidden, dtype=dtype, rngs=rngs) if hidden else None
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(hidden or width, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, branches: Sequence[jax.Array]) -> jax.Array:
        _check_branches(self, branches)
        x = self.dropout(jnp.concatenate(branches, axis=-1))
        if self.hidden is not None:
            x = self.dropout(nnx.relu(self.hidden(x)))
        return self.head(x).astype(jnp.float32)


@register_fusion("attention")
class AttentionFusion(nnx.Module):
    """Softmax attention over branches (Bahdanau-style scoring of each branch embedding).

    e_n = tanh(P_n x_n + b_n) projects branch n to a common (B, dim); its score is
    u_n = vᵀ tanh(W e_n + b); α = softmax_n(u); fused = Σ_n α_n e_n -> dropout -> dense to classes.
    The weights α are per example, so a clip with a useless branch (silence, a lost face) can lean
    on the others.
    """

    reads = "features"
    num_branches = None

    def __init__(
        self,
        in_dims: Sequence[int],
        num_classes: int,
        *,
        dim: int = 128,
        dropout: float = 0.0,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.in_dims = tuple(in_dims)
        self.projections = nnx.List(nnx.Linear(d, dim, dtype=dtype, rngs=rngs) for d in self.in_dims)
        self.attention_hidden = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)
        self.attention_vector = nnx.Linear(dim, 1, use_bias=False, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(dim, num_classes, dtype=dtype, rngs=rngs)

    def attention(self, branches: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
        """-> (α (B, branches) summing to 1 per example, embeddings (B, branches, dim))."""
        _check_branches(self, branches)
        e = jnp.stack([jnp.tanh(p(x)) for p, x in zip(self.projections, branches)], axis=1)
        u = self.attention_vector(jnp.tanh(self.attention_hidden(e)))[..., 0]
        return jax.nn.softmax(u.astype(jnp.float32), axis=-1), e

    def __call__(self, branches: Sequence[jax.Array]) -> jax.Array:
        alpha, e = self.attention(branches)
        fused = jnp.einsum("bn,bnd->bd", alpha.astype(e.dtype), e)
        return self.head(self.dropout(fused)).astype(jnp.float32)


@register_fusion("fbp")
class FactorizedBilinearPooling(nnx.Module):
    """Cross-modal factorized bilinear pooling of two branches (Zhou et al. 2019, after Yu et al.'s
    MFB, 2017).

    a (B, d_a), v (B, d_v) -> z = SumPool_k(Uᵀa ∘ Vᵀv) (B, out_dim), summing each run of `factor`
    consecutive entries of the (B, out_dim * factor) product; then z <- sign(z)·sqrt(|z|) (power
    normalisation) and z <- z / ||z||₂, dropout, dense to classes.

    Parameters: U (d_a, out_dim * factor), V (d_v, out_dim * factor) (no bias, as in the formula),
    then the classifier. Defaults are MFB's (factor 5, out_dim 1000).
    """

    reads = "features"
    num_branches = 2

    def __init__(
        self,
        in_dims: Sequence[int],
        num_classes: int,
        *,
        factor: int = 5,
        out_dim: int = 1000,
        dropout: float = 0.1,
        eps: float = 1e-12,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if factor < 1 or out_dim < 1:
            raise ConfigError(f"fbp: factor and out_dim must be >= 1, got {factor} and {out_dim}.")
        self.in_dims = tuple(in_dims)
        self.factor = factor
        self.out_dim = out_dim
        # Why eps: the gradient of sqrt(|z|) is infinite at 0; with it the output moves by at most
        # sqrt(eps) = 1e-6 and the gradient stays finite.
        self.eps = eps
        d_a, d_v = self.in_dims
        self.U = nnx.Linear(d_a, out_dim * factor, use_bias=False, dtype=dtype, rngs=rngs)
        self.V = nnx.Linear(d_v, out_dim * factor, use_bias=False, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(out_dim, num_classes, dtype=dtype, rngs=rngs)

    def pooled(self, branches: Sequence[jax.Array]) -> jax.Array:
        """The normalised bilinear feature z (B, out_dim), float32, before dropout and the classifier."""
        _check_branches(self, branches)
        a, v = branches
        joint = (self.U(a) * self.V(v)).astype(jnp.float32)
        z = joint.reshape(*joint.shape[:-1], self.out_dim, self.factor).sum(-1)
        z = jnp.sign(z) * jnp.sqrt(jnp.abs(z) + self.eps)
        # Clamped inside the sqrt, not outside: sqrt's slope at 0 is infinite, and a silent branch
        # (all-zero features) gives z = 0.
        norm = jnp.sqrt(jnp.maximum(jnp.sum(z * z, axis=-1, keepdims=True), self.eps**2))
        return z / norm

    def __call__(self, branches: Sequence[jax.Array]) -> jax.Array:
        z = self.pooled(branches)
        return self.head(self.dropout(z)).astype(jnp.float32)
