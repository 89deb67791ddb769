"""`fer-jax export --format onnx`: a run's model as an ONNX file (jax2onnx), for onnxruntime on
devices that have neither JAX nor the training stack; and an int8 variant (onnxruntime's dynamic
quantisation).

jax2onnx has no 3D convolution (in either layout) and patches some Flax functions while it traces,
so the model's own code is not handed to it. Instead the model's forward pass is traced by JAX to a
jaxpr, with the restored weights as constants, and `exportable` re-runs that jaxpr primitive by
primitive, replacing what ONNX cannot express with an equivalent it can:

    conv_general_dilated over 3 spatial dimensions   a 2D convolution over the temporal taps folded
                                                      into the channels (the kd frames a kernel
                                                      spans, side by side: kd*C channels)
    reduce_window_max                                 the max of the window's strided slices
    jit, custom_jvp/vjp calls                         inlined
    scan                                              lax.scan of the re-run body (the ConvLSTM)

Everything else (2D convolutions, reshape-max pooling, dots, softmax) is bound unchanged. So this
path depends on what the forward pass computes, not on how the training model writes it. The
ONNX model has a fixed batch size (the sidecar says which) and takes the record arrays as the
records store them (uint8 frames).
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core

from fer_jax.errors import ConfigError
from fer_jax.infer.export import sidecar_meta
from fer_jax.models.layers import lax_convolutions
from fer_jax.infer.loader import InferenceModel
from fer_jax.infer.onnx_model import ONNX_FORMAT, sidecar_path
_INLINED = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr",
            "remat", "checkpoint")


def exportable(closed: core.ClosedJaxpr):
    """f(*args) computing `closed` with only primitives that jax2onnx converts (module docstring)."""

    def run(*args):
        outs = _eval(closed.jaxpr, closed.consts, args)
        return outs[0] if len(outs) == 1 else tuple(outs)

    return run


def _eval(jaxpr, consts, args) -> list:
    env = {}

    def read(v):
        return v.val if isinstance(v, core.Literal) else env[v]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = value
    for var, value in zip(jaxpr.invars, args):
        env[var] = value
    for eqn in jaxpr.eqns:
        outs = _apply(eqn, [read(v) for v in eqn.invars])
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for var, value in zip(eqn.outvars, outs):
            env[var] = value
    return [read(v) for v in jaxpr.outvars]


def _inner(params) -> core.ClosedJaxpr:
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        if key in params:
            inner = params[key]
            return inner if isinstance(inner, core.ClosedJaxpr) else core.ClosedJaxpr(inner, ())
    raise ConfigError(f"no inner program in {sorted(params)}")


def _apply(eqn, args):
    name, params = eqn.primitive.name, eqn.params
    if name == "conv_general_dilated" and len(params["window_strides"]) == 3:
        return _conv3d_as_2d(args[0], args[1], params)
    if name == "reduce_window_max":
        return _max_window(args[0], params)
    if name in _INLINED:
        inner = _inner(params)
        outs = _eval(inner.jaxpr, inner.consts, args[len(args) - len(inner.jaxpr.invars):])
        return outs if eqn.primitive.multiple_results else outs[0]
    if name == "scan":
        return _scan(args, params)
    return eqn.primitive.bind(*args, **params)


def _scan(args, params) -> list:
    body, num_consts, num_carry = params["jaxpr"], params["num_consts"], params["num_carry"]
    consts, init, xs = args[:num_consts], args[num_consts: num_consts + num_carry], args[num_consts + num_carry:]

    def step(carry, x):
        out = _eval(body.jaxpr, body.consts, [*consts, *carry, *x])
        return out[:num_carry], out[num_carry:]

    carry, ys = lax.scan(step, list(init), list(xs), length=params["length"], reverse=params["reverse"])
    return [*carry, *ys]


def _max_window(x, params):
    """Max pooling as the elementwise max of the window's strided slices of the -inf-padded input
    (jax2onnx maps reduce_window_max to a MaxPool whose window covers the batch and channel axes,
    which onnxruntime refuses)."""
    if any(d != 1 for d in (*params["base_dilation"], *params["window_dilation"])):
        raise ConfigError(f"cannot export a dilated max pooling to ONNX ({params})")
    x = lax.pad(x, jnp.array(-jnp.inf, x.dtype), [(low, high, 0) for low, high in params["padding"]])
    window, strides = params["window_dimensions"], params["window_strides"]
    out = [(size - w) // s + 1 for size, w, s in zip(x.shape, window, strides)]
    result = None
    for offset in np.ndindex(*window):
        piece = lax.slice(x, offset, [o + (n - 1) * s + 1 for o, n, s in zip(offset, out, strides)], strides)
        result = piece if result is None else jnp.maximum(result, piece)
    return result


def _conv3d_as_2d(x, kernel, params):
    """A 3D convolution as one 2D convolution: each output frame's kd input frames (the kernel's
    temporal taps) stacked on the channel axis, the kernel's taps folded the same way."""
    numbers = params["dimension_numbers"]
    unsupported = {k: params[k] for k in ("lhs_dilation", "feature_group_count", "batch_group_count")
                   if params[k] not in ((1, 1, 1), 1)}
    if unsupported:
        raise ConfigError(f"cannot export a 3D convolution with {unsupported} to ONNX")
    # To (N, T, H, W, C) and (kd, kh, kw, I, O), whatever the model's layout.
    x = jnp.transpose(x, (numbers.lhs_spec[0], *numbers.lhs_spec[2:], numbers.lhs_spec[1]))
    kernel = jnp.transpose(kernel, (*numbers.rhs_spec[2:], numbers.rhs_spec[1], numbers.rhs_spec[0]))
    (t_low, t_high), *spatial_padding = params["padding"]
    t_stride, *spatial_strides = params["window_strides"]
    t_dilation, *spatial_dilation = params["rhs_dilation"]
    taps = kernel.shape[0]
    x = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0), (t_low, t_high, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)])
    batch, frames, height, width, channels = x.shape
    steps = (frames - (taps - 1) * t_dilation - 1) // t_stride + 1
    stacked = jnp.stack([lax.slice_in_dim(x, k * t_dilation, k * t_dilation + (steps - 1) * t_stride + 1, t_stride,
                                          axis=1) for k in range(taps)], axis=4)  # (N, To, H, W, kd, C)
    folded = stacked.reshape(batch * steps, height, width, taps * channels)
    kernel = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(*kernel.shape[1:3], taps * channels, kernel.shape[4])
    y = lax.conv_general_dilated(folded, kernel, spatial_strides, spatial_padding, rhs_dilation=spatial_dilation,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=params["precision"],
                                 preferred_element_type=params["preferred_element_type"])
    y = y.reshape(batch, steps, *y.shape[1:])  # (N, To, Ho, Wo, O) back to the model's layout
    return jnp.transpose(y, np.argsort((numbers.out_spec[0], *numbers.out_spec[2:], numbers.out_spec[1])))


def exportable_forward(model: InferenceModel, batch_size: int):
    """(f(*inputs in model.keys order), example input structs): the model's forward pass with its
    weights as constants, in exportable primitives."""
    forward, params, keys = model.forward, model.run.params, model.keys
    structs = [jax.ShapeDtypeStruct((batch_size, *shape), dtype) for shape, dtype in
               (model.input_spec()[k] for k in keys)]
    with lax_convolutions():  # traced as lax convolutions, which become ONNX Conv operators
        closed = jax.make_jaxpr(lambda *inputs: forward(params, dict(zip(keys, inputs))))(*structs)
    return exportable(closed), structs


def _jax2onnx():
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ConfigError("ONNX export needs jax2onnx and onnxruntime: pip install 'fer-jax[onnx]' "
                          "(see pyproject.toml for why --no-deps)") from None
    return to_onnx


def export_onnx(model: InferenceModel, out, batch_size: int = 1) -> tuple[pathlib.Path, pathlib.Path]:
    """Write `out` (ONNX) and `out`.json (the preprocessing, as `fer-jax export` writes it)."""
    to_onnx = _jax2onnx()
    fn, structs = exportable_forward(model, batch_size)
    proto = to_onnx(fn, structs, model_name=model.config.model.name, input_names=list(model.keys),
                    output_names=["output"])
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(proto.SerializeToString())
    meta = sidecar_meta(model, ONNX_FORMAT, batch=batch_size)
    side = sidecar_path(out)
    side.write_text(json.dumps(meta, indent=1))
    return out, side


def quantize_int8(path, out) -> tuple[pathlib.Path, pathlib.Path]:
    """The int8 variant of an exported ONNX model (weights int8, activations quantised per call by
    onnxruntime's dynamic quantisation), with a copy of its sidecar."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path, out = pathlib.Path(path), pathlib.Path(out)
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    meta = json.loads(sidecar_path(path).read_text())
    sidecar_path(out).write_text(json.dumps({**meta, "quantization": "int8 weights, dynamic int8 activations"},
                                            indent=1))
    return out, sidecar_path(out)
