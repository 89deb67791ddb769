"""Analytic FLOPs of a JAX function, counted from the shapes of its convolutions and matmuls.

The function is traced to a jaxpr (nothing runs) and every `dot_general` and `conv_general_dilated`
contributes 2 x (multiply-accumulates), computed from its operand and output shapes. A `scan` body
counts `length` times, which XLA's cost analysis does not do (it counts a loop body once), so this
is the figure MFU is computed from; elementwise work (activations, gates, the optimizer update) is
left out, as MFU conventions do. Tracing the whole train step counts the backward pass exactly
instead of assuming "3 x forward".
"""

from __future__ import annotations

import math

import jax
from jax.extend import core as jex_core


def _dot_flops(eqn) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    out = eqn.outvars[0].aval.shape
    return 2 * math.prod(out) * math.prod(lhs[d] for d in lhs_contract)


def _conv_flops(eqn) -> int:
    # Each output element is a dot over the kernel's window and its (per-group) input features:
    # the kernel's size divided by its output-feature count. Positions that fall on padding or on
    # the zeros of a dilated input (transposed convolutions in the backward pass) are counted too.
    rhs = eqn.invars[1].aval.shape
    out = eqn.outvars[0].aval.shape
    out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
    return 2 * math.prod(out) * (math.prod(rhs) // rhs[out_feature_dim])


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jex_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jex_core.Jaxpr):
                yield item


def jaxpr_flops(jaxpr) -> int:
    """FLOPs of the convolutions and matmuls of `jaxpr` (a Jaxpr or ClosedJaxpr)."""
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"])
        elif name == "cond":
            # One branch runs; the costliest one bounds it (ours only skip cheap work, e.g. rotation).
            total += max(jaxpr_flops(branch) for branch in eqn.params["branches"])
        elif name == "while":
            # Trip count unknown at trace time; our models have none (their loops are scans).
            total += jaxpr_flops(eqn.params["body_jaxpr"])
        else:  # jit, custom_vjp/jvp, remat, shard_map...: count what they wrap, once
            total += sum(jaxpr_flops(sub) for sub in _sub_jaxprs(eqn))
    return total


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of one call of `fn(*args, **kwargs)` (traced, not run; arrays or ShapeDtypeStructs)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs))


def _xla_cost(compiled, key: str) -> float | None:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax returned one dict per device
        analysis = analysis[0] if analysis else None
    if not analysis or key not in analysis:
        return None
    return float(analysis[key])


def xla_flops(compiled) -> float | None:
    """XLA's own count for a compiled executable (a loop body counted once; elementwise ops in)."""
    return _xla_cost(compiled, "flops")


def xla_bytes_accessed(compiled) -> float | None:
    """XLA's "bytes accessed" of a compiled executable (per device): for every instruction of the
    optimised program, a fusion counting as one, the bytes of the operands it reads plus the output
    it writes, summed. It assumes each operand comes from memory once per instruction (no reuse in
    caches across instructions, none lost to re-reads within one), and, as for FLOPs, counts a loop
    body once, so for models with a `scan` (ConvLSTM, LSTM) it is a lower bound."""
    return _xla_cost(compiled, "bytes accessed")
