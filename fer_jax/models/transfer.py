"""Copy trained weights from Keras and PyTorch into our Flax NNX modules.

A transfer is described by a mapping {source name: our module path}:
  - a Keras source name is a layer name (`model.get_layer(name)`, or a group of a legacy HDF5 file);
  - a PyTorch source name is a module prefix of the state dict ("features.0" for the tensors
    "features.0.weight" and "features.0.bias"). The tensors of layer k > 0 or of the reverse direction
    of an `nn.LSTM` are named "<prefix>.l<k>" and "<prefix>.l<k>_reverse"; layer 0 forward is "<prefix>";
  - our path is dotted attribute/index access from the model ("blocks.0.sep1"); None skips the source
    layer on purpose (e.g. a classifier head being replaced).
The layout converter is chosen by what the source layer holds (its tensor names and ranks) and, where
our side has more than one layout for it (LSTMs), by the type of the target module:

  Keras                                           ours
  kernel (kh, kw, Cin, Cout) / (in, out) [+ bias]  nnx.Conv / nnx.Linear kernel [+ bias], as is
  depthwise_kernel (kh, kw, Cin, M) [+ bias]       nnx.Conv(feature_group_count=Cin).kernel (kh, kw, 1, Cin*M)
    (Keras 3 DepthwiseConv2D: "kernel")
  depthwise_kernel + pointwise_kernel [+ bias]     a module with `depthwise` and `pointwise` nnx.Conv
                                                   children (mini_xception.SeparableConv2D)
  gamma, beta, moving_mean, moving_variance        nnx.BatchNorm scale, bias, mean, var
  gamma, beta (LayerNormalization)                 nnx.LayerNorm scale, bias
  kernel, recurrent_kernel, bias (ConvLSTM2D)      convlstm.ConvLSTM2D, as is
  kernel, recurrent_kernel, bias (LSTM, i f c o)   nnx.OptimizedLSTMCell / nnx.LSTMCell / nnx.RNN of either
  embeddings                                       nnx.Embed embedding

  PyTorch                                         ours
  Conv weight (Cout, Cin/groups, *k) [+ bias]      nnx.Conv kernel (*k, Cin/groups, Cout) [+ bias]
  Linear weight (out, in) [+ bias]                 nnx.Linear kernel (in, out) [+ bias]
  BatchNorm weight, bias, running_mean, running_var  nnx.BatchNorm scale, bias, mean, var
                                                   (num_batches_tracked has no counterpart and is dropped)
  LayerNorm/GroupNorm weight, bias                 scale, bias
  LSTM weight_ih, weight_hh, bias_ih, bias_hh      nnx.OptimizedLSTMCell / nnx.LSTMCell / nnx.RNN of either
       (gates i, f, g, o)                          (flax's i, f, g, o; the two biases are summed)
  Embedding weight (num, dim)                      nnx.Embed embedding, as is

Hyperparameters are not copied: our modules must be built with the source's epsilons, paddings,
strides and activations (the parity tests in tests/test_transfer.py and
tests/test_fer2013_astronaut.py are where that is checked). A transfer is all or nothing: every
problem (an unknown name on either side, a source tensor with no place in our module, a parameter of
a mapped module the source does not provide, a shape mismatch, and with `strict` a source layer
with weights that the mapping does not mention) is collected and raised in one FerJaxError before
anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from fer_jax.errors import FerJaxError
from fer_jax.models.convlstm import ConvLSTM2D

# One layer's tensors, by short name ("kernel", "running_mean", ...).
Tensors = dict[str, np.ndarray]
# (our path relative to the target module, value, the source tensor names it was made from)
Assignment = tuple[str, np.ndarray, tuple[str, ...]]

_TORCH_LSTM_KEY = re.compile(r"^(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")
# Layer-wise tensors torch keeps that have no parameter counterpart.
_TORCH_IGNORED = ("num_batches_tracked",)


# ----------------------------------------------------------------------------- reading sources


def read_keras_weights(source: Any) -> dict[str, Tensors]:
    """{layer name: {tensor name: array}} from a Keras model, a Keras layer, or a legacy HDF5 path.

    HDF5 files are those `model.save("x.h5")` / `save_weights("x.h5")` wrote (Keras 2 and the
    legacy format of Keras 3); they are read with h5py, so Keras need not be installed. Layers of a
    nested model are named "outer/inner". Layers without weights are left out.
    """
    if isinstance(source, (str, os.PathLike)):
        return _read_keras_hdf5(os.fspath(source))
    if hasattr(source, "layers"):
        out: dict[str, Tensors] = {}
        _collect_keras_layers(source, "", out)
        return out
    if hasattr(source, "weights") and hasattr(source, "name"):
        tensors = _keras_layer_tensors(source)
        return {source.name: tensors} if tensors else {}
    raise FerJaxError(
        f"load_keras_weights: expected a Keras model or layer or a path to a .h5/.hdf5 file, "
        f"got {type(source).__name__}."
    )


def _collect_keras_layers(model: Any, prefix: str, out: dict[str, Tensors]) -> None:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested model
            _collect_keras_layers(layer, f"{prefix}{layer.name}/", out)
            continue
        tensors = _keras_layer_tensors(layer)
        if tensors:
            out[prefix + layer.name] = tensors


def _keras_layer_tensors(layer: Any) -> Tensors:
    tensors: Tensors = {}
    for weight in layer.weights:
        name = _short_keras_name(getattr(weight, "path", None) or weight.name)
        if name in tensors:
            raise FerJaxError(
                f"Keras layer {layer.name!r} has two tensors named {name!r} (a wrapper such as "
                "Bidirectional or TimeDistributed); map its inner layers instead."
            )
        value = weight.numpy() if hasattr(weight, "numpy") else np.asarray(weight)
        tensors[name] = np.asarray(value)
    return tensors


def _short_keras_name(name: str) -> str:
    # "conv2d_1/conv2d_1_1/kernel:0" (Keras 2) or "conv2d/kernel" (Keras 3) -> "kernel"
    return name.split("/")[-1].split(":")[0]


def _read_keras_hdf5(path: str) -> dict[str, Tensors]:
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py ships with keras and with our deps
        raise FerJaxError("Reading Keras .h5 weights needs h5py: pip install h5py") from err
    if not os.path.isfile(path):
        raise FerJaxError(f"{path}: no such Keras weights file.")
    out: dict[str, Tensors] = {}
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise FerJaxError(
                f"{path}: not a legacy Keras HDF5 file (no layer_names); Keras 3 '.keras' and "
                "'.weights.h5' files: load the model in Keras and pass the model instead."
            )
        for layer_name in (_text(n) for n in group.attrs["layer_names"]):
            layer = group[layer_name]
            names = [_text(n) for n in layer.attrs.get("weight_names", [])]
            if names:
                out[layer_name] = {_short_keras_name(n): np.asarray(layer[n]) for n in names}
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_torch_state_dict(source: Any) -> dict[str, Tensors]:
    """{module prefix: {tensor name: array}} from a state dict, an nn.Module, or a .pt/.pth path.

    A path is read with `torch.load(path, map_location="cpu", weights_only=True)`; a training
    checkpoint holding the weights under "state_dict" is unwrapped. LSTM tensors are grouped per
    layer and direction (see the module docstring); "num_batches_tracked" is dropped.
    """
    if isinstance(source, (str, os.PathLike)):
        torch = _import_torch()
        if not os.path.isfile(source):
            raise FerJaxError(f"{os.fspath(source)}: no such PyTorch weights file.")
        source = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
    if hasattr(source, "state_dict") and callable(source.state_dict):
        source = source.state_dict()
    if isinstance(source, Mapping) and isinstance(source.get("state_dict"), Mapping):
        source = source["state_dict"]
    if not isinstance(source, Mapping):
        raise FerJaxError(
            f"load_torch_state_dict: expected a state dict, an nn.Module or a .pt/.pth path, "
            f"got {type(source).__name__}."
        )
    out: dict[str, Tensors] = {}
    for key, value in source.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in _TORCH_IGNORED:
            continue
        lstm = _TORCH_LSTM_KEY.match(leaf)
        if lstm:
            kind, which, layer, reverse = lstm.groups()
            suffix = "" if (layer == "0" and not reverse) else f"l{layer}{reverse or ''}"
            prefix = ".".join(p for p in (prefix, suffix) if p)
            leaf = f"{kind}_{which}"
        out.setdefault(prefix, {})[leaf] = _torch_to_numpy(value)
    return out


def _import_torch():
    try:
        import torch
    except ImportError as err:
        raise FerJaxError(
            "Reading PyTorch weight files needs torch: pip install torch (the CPU wheel is enough)."
        ) from err
    return torch


def _torch_to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()  # bfloat16/float16 have no exact NumPy twin on every platform
        return value.numpy()
    return np.asarray(value)


# ----------------------------------------------------------------------------- layout converters


def _lstm(target: nnx.Module, w_i: np.ndarray, w_h: np.ndarray, b: np.ndarray, used) -> list[Assignment]:
    """(in, 4H), (H, 4H), (4H,) with gates i, f, g, o -> a flax LSTM cell (or an nnx.RNN of one)."""
    prefix = ""
    if isinstance(target, nnx.RNN):
        target, prefix = target.cell, "cell."
    if isinstance(target, nnx.OptimizedLSTMCell):
        return [
            (prefix + "dense_i.kernel", w_i, used), (prefix + "dense_h.kernel", w_h, used),
            (prefix + "dense_h.bias", b, used),
        ]
    if isinstance(target, nnx.LSTMCell):
        out = []
        for gate, w_ig, w_hg, b_g in zip(
            ("i", "f", "g", "o"), np.split(w_i, 4, -1), np.split(w_h, 4, -1), np.split(b, 4, -1)
        ):
            # flax spells the input gate of "f" as "if_" (`if` is a keyword).
            out += [
                (f"{prefix}i{gate}{'_' if gate == 'f' else ''}.kernel", w_ig, used),
                (f"{prefix}h{gate}.kernel", w_hg, used),
                (f"{prefix}h{gate}.bias", b_g, used),
            ]
        return out
    raise _Unsupported(
        f"LSTM weights need an nnx.OptimizedLSTMCell, nnx.LSTMCell or nnx.RNN, not {type(target).__name__}"
    )


class _Unsupported(Exception):
    """A source layer kind that the target module cannot take; becomes one line of the report."""


def _keras_convert(tensors: Tensors, target: nnx.Module) -> list[Assignment]:
    names = set(tensors)
    if isinstance(target, nnx.ConvTranspose):
        raise _Unsupported("Conv*Transpose kernels are not supported")
    if "moving_mean" in names or ("kernel" not in names and names & {"gamma", "beta"}):
        rename = {"gamma": "scale", "beta": "bias", "moving_mean": "mean", "moving_variance": "var"}
        return [(rename.get(n, n), v, (n,)) for n, v in tensors.items()]
    if "recurrent_kernel" in names:
        if isinstance(target, ConvLSTM2D):  # same layout and names as Keras's ConvLSTM2D
            return [(n, v, (n,)) for n, v in tensors.items()]
        used = tuple(sorted(names))
        bias = tensors.get("bias", np.zeros(tensors["kernel"].shape[-1:], np.float32))
        return _lstm(target, tensors["kernel"], tensors["recurrent_kernel"], bias, used)
    out: list[Assignment] = []
    depthwise = "depthwise_kernel" if "depthwise_kernel" in names else None
    if depthwise is None and "kernel" in names and _is_keras3_depthwise(tensors["kernel"], target):
        depthwise = "kernel"
    if depthwise:
        dw = tensors[depthwise]  # (kh, kw, Cin, M): output channel c*M + m, as a grouped conv's
        dw = dw.reshape(*dw.shape[:-2], 1, dw.shape[-2] * dw.shape[-1])
        separable = "pointwise_kernel" in names
        out.append(("depthwise.kernel" if separable else "kernel", dw, (depthwise,)))
        if separable:
            out.append(("pointwise.kernel", tensors["pointwise_kernel"], ("pointwise_kernel",)))
        if "bias" in names:
            out.append(("pointwise.bias" if separable else "bias", tensors["bias"], ("bias",)))
        return out
    if "embeddings" in names:
        return [("embedding", tensors["embeddings"], ("embeddings",))]
    # Conv1D/2D/3D and Dense: Keras's (*k, Cin, Cout) / (in, out) are Flax's layouts.
    return [(n, v, (n,)) for n, v in tensors.items()]


def _is_keras3_depthwise(kernel: np.ndarray, target: nnx.Module) -> bool:
    # Keras 3's DepthwiseConv2D calls its (kh, kw, Cin, M) tensor "kernel" (Keras 2: depthwise_kernel);
    # a grouped conv's kernel (kh, kw, Cin/groups, Cout) is ours as is, so the target decides.
    groups = getattr(target, "feature_group_count", 1)
    return isinstance(target, nnx.Conv) and groups > 1 and kernel.ndim >= 3 and kernel.shape[-2] == groups


def _torch_convert(tensors: Tensors, target: nnx.Module) -> list[Assignment]:
    names = set(tensors)
    if isinstance(target, nnx.ConvTranspose):
        raise _Unsupported("ConvTranspose weights are not supported")
    if "weight_ih" in names:
        used = tuple(sorted(names))
        hidden4 = tensors["weight_ih"].shape[0]
        bias = tensors.get("bias_ih", np.zeros(hidden4, np.float32)) + tensors.get(
            "bias_hh", np.zeros(hidden4, np.float32)
        )
        return _lstm(target, tensors["weight_ih"].T, tensors["weight_hh"].T, bias, used)
    if "running_mean" in names:
        rename = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
        return [(rename.get(n, n), v, (n,)) for n, v in tensors.items()]
    weight = tensors.get("weight")
    out: list[Assignment] = []
    if weight is not None:
        if isinstance(target, nnx.Embed):
            out.append(("embedding", weight, ("weight",)))
        elif weight.ndim >= 3:  # (Cout, Cin/groups, *k) -> (*k, Cin/groups, Cout)
            out.append(("kernel", np.transpose(weight, (*range(2, weight.ndim), 1, 0)), ("weight",)))
        elif weight.ndim == 2:  # Linear (out, in) -> (in, out)
            out.append(("kernel", weight.T, ("weight",)))
        else:  # LayerNorm / GroupNorm / BatchNorm without running stats
            out.append(("scale", weight, ("weight",)))
    out += [(n, v, (n,)) for n, v in tensors.items() if n != "weight"]
    return out


# ----------------------------------------------------------------------------- loading


def load_keras_weights(
    model: nnx.Module, keras_model_or_path: Any, mapping: Mapping[str, str | None], *, strict: bool = True
) -> None:
    """Copies Keras weights into `model` in place; `mapping` is {Keras layer name: our path or None}.

    `keras_model_or_path`: a Keras model or layer, or a legacy HDF5 path (read with h5py only).
    With `strict`, every Keras layer that holds weights must appear in the mapping.
    """
    _load(model, read_keras_weights(keras_model_or_path), mapping, _keras_convert, "Keras", strict)


def load_torch_state_dict(
    model: nnx.Module, state_dict: Any, mapping: Mapping[str, str | None], *, strict: bool = True
) -> None:
    """Copies PyTorch weights into `model` in place; `mapping` is {module prefix: our path or None}.

    `state_dict`: a state dict (tensors or arrays), an nn.Module, or a .pt/.pth path.
    With `strict`, every module prefix that holds tensors must appear in the mapping.
    """
    _load(model, read_torch_state_dict(state_dict), mapping, _torch_convert, "PyTorch", strict)


def _load(
    model: nnx.Module,
    source: dict[str, Tensors],
    mapping: Mapping[str, str | None],
    convert: Callable[[Tensors, nnx.Module], list[Assignment]],
    framework: str,
    strict: bool,
) -> None:
    modules, variables = _index(model)
    problems: dict[str, list[str]] = {}

    def report(kind: str, line: str) -> None:
        problems.setdefault(kind, []).append(line)

    planned: dict[str, tuple[nnx.Variable, np.ndarray, str]] = {}
    reported: set[str] = set()  # our parameters already named in a problem, listed only once
    filled: list[tuple[str, str]] = []  # (source name, our path) of the layers converted
    for name, path in mapping.items():
        if name not in source:
            report(f"{framework} names not in the source", name)
            continue
        if path is None:
            continue
        target = modules.get(path)
        if target is None:
            report("paths not in our model", f"{path} (for {name})")
            continue
        try:
            assignments = convert(source[name], target)
        except _Unsupported as err:
            report("unsupported layers", f"{name} -> {path}: {err}")
            continue
        used = {n for _, _, names in assignments for n in names}
        for extra in sorted(set(source[name]) - used):
            report("source tensors with no place in our module", f"{name}.{extra} -> {path}")
        for rel, value, names in assignments:
            full = f"{path}.{rel}" if path else rel
            variable = variables.get(full)
            source_desc = f"{name}.{'+'.join(names)}"
            if variable is None:
                report(
                    "source tensors with no place in our module", f"{source_desc} -> {full} (no such parameter)"
                )
            elif full in planned:
                report("parameters written twice", f"{full} (from {planned[full][2]} and {source_desc})")
            elif tuple(variable.shape) != tuple(value.shape):
                reported.add(full)
                report("shape mismatches", f"{source_desc} {value.shape} -> {full} {tuple(variable.shape)}")
            else:
                planned[full] = (variable, value, source_desc)
        filled.append((name, path))
    # After all layers: a module may be filled by several (e.g. a parent and its children).
    for name, path in filled:
        prefix = f"{path}." if path else ""
        for full in sorted(v for v in variables if v.startswith(prefix)):
            if full not in planned and full not in reported:
                report(
                    f"our parameters the {framework} layer does not provide", f"{full} (in {path}, from {name})"
                )
                reported.add(full)
    if strict:
        for name in sorted(set(source) - set(mapping)):
            report(f"{framework} layers missing from the mapping (map them, to None to skip)", name)
    if problems:
        lines = [f"{kind}: {', '.join(items)}" for kind, items in problems.items()]
        header = f"{framework} -> {type(model).__name__} weight transfer failed:"
        raise FerJaxError("\n  ".join([header, *lines]))
    for variable, value, _ in planned.values():
        variable[...] = jnp.asarray(value, dtype=variable.get_value().dtype)


def _index(model: nnx.Module) -> tuple[dict[str, nnx.Module], dict[str, nnx.Variable]]:
    """({dotted path: submodule}, {dotted path: Param or BatchStat}) of everything in `model`."""
    modules: dict[str, nnx.Module] = {}
    variables: dict[str, nnx.Variable] = {}
    for path, node in nnx.iter_graph(model):
        dotted = ".".join(str(p) for p in path)
        if isinstance(node, nnx.Module):
            modules[dotted] = node
        elif isinstance(node, (nnx.Param, nnx.BatchStat)):
            variables[dotted] = node
    return modules, variables
