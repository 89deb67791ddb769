"""Tolerances for comparing two correct floating-point computations of the same quantity.

Where they come from. A layer computes sums of `terms` products. A float accumulator rounds at every
add, each time by at most half a unit in the last place (eps / 2 of the running sum). Over n adds
with terms of random sign the partial sums are a random walk, and so are the roundings: the sum ends
off by about eps * sqrt(n) relative to the size of the values summed, in whatever order (sequential,
blocked, tree-shaped) an implementation accumulates. A network feeds each layer's error into the
next with a gain of about one (weights of std 1/sqrt(fan-in), normalisation), so the errors of
`layers` layers add up: layers * sqrt(terms) * eps * scale, where `scale` bounds the magnitude of
the values (activations, outputs) being accumulated. Two implementations each carry such an error,
so they may differ by twice that. The bound is a few times the typical error (random walks rarely
reach a few standard deviations, and blocked sums grow slower than sqrt(n)), so a comparison passes
on any CPU, while a real mismatch (a transposed kernel, a missing layer, a wrong gate) moves the
output by a fraction of its scale, 10^3 to 10^5 times more.
"""

from __future__ import annotations

import contextlib
import math

import jax.numpy as jnp
import numpy as np

F32_EPS = float(np.finfo(np.float32).eps)  # 2**-23 = 1.19e-7
F64_EPS = float(np.finfo(np.float64).eps)  # 2**-52 = 2.2e-16
BF16_EPS = 2.0**-7  # bfloat16 keeps 8 significant bits


def rounding_tolerance(*, terms: int, layers: int = 1, scale: float = 1.0, eps: float = F32_EPS) -> float:
    """Largest |difference| expected between two correct evaluations, each in precision `eps`, of
    `layers` chained layers whose largest sums have `terms` terms of magnitude up to `scale`."""
    return 2.0 * layers * math.sqrt(terms) * eps * scale


def output_tolerance(expected, *, terms: int, layers: int = 1, eps: float = F32_EPS) -> float:
    """rounding_tolerance for a computation whose values are O(1) or as large as its `expected`
    output, whichever is larger (weights of std <~1 on inputs of std <~1 keep activations so)."""
    scale = max(1.0, float(np.max(np.abs(np.asarray(expected)))))
    return rounding_tolerance(terms=terms, layers=layers, scale=scale, eps=eps)


def max_abs_diff(got, expected) -> float:
    return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(expected, np.float64))))


def assert_close(got, expected, tol: float, what: str = "") -> None:
    """|got - expected| <= tol everywhere (shapes must agree)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol, err_msg=what)


def assert_caught(got, expected, tol: float, what: str = "", margin: float = 10.0) -> None:
    """A deliberately wrong computation misses `expected` by more than `margin` times `tol`: the
    comparison guarded by `tol` fails it clearly, not by luck of the draw."""
    diff = max_abs_diff(got, expected)
    assert diff > margin * tol, f"{what}: a wrong computation came within {diff:.3g} (tolerance {tol:.3g})"


@contextlib.contextmanager
def largest_param_flipped(module):
    """Within the block, `module`'s largest parameter is flipped along its first axis longer than 1:
    a wrong weight layout (a kernel upside down, as from confusing convolution with correlation;
    inputs or channels in reverse order). Yields the parameter's path."""
    from flax import nnx

    path, var = max(nnx.to_flat_state(nnx.state(module, nnx.Param)), key=lambda kv: kv[1].get_value().size)
    value = var.get_value()
    var.set_value(jnp.flip(value, next(a for a, n in enumerate(value.shape) if n > 1)))
    try:
        yield path
    finally:
        var.set_value(value)
