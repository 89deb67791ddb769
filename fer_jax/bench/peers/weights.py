"""Copy a fer-jax model's weights into its PyTorch peer, so a test can check both compute the same
forward pass (tests/test_torch_peers.py): the peers are named like our modules, and only the
layouts differ.

    ours (Flax NNX)                                 torch
    Conv kernel (*k, Cin, Cout)   e.g. DHWIO         weight (Cout, Cin, *k)   e.g. OIDHW
    ConvLSTM2D kernel / recurrent_kernel (kh, kw,    weight / recurrent_weight (4F, Cin or F, kh, kw),
      Cin or F, 4F), gates i, f, c, o                 the same gate order along the output channels
    Linear kernel (in, out)                          weight (out, in)
    BatchNorm scale, bias, mean, var                 weight, bias, running_mean, running_var
    LSTMCell weight_ih, weight_hh, bias_ih, bias_hh  nn.LSTM's tensors, as they are (same layout and
      (torch's layout and gate order already)         gate order i, f, g, o; see models/recurrent.py)

A flattened feature map is (t, h, w, c) ordered on our side and (c, t, h, w) in torch (channels
first), so the dense layer that reads it gets its input columns permuted (`channels_first_columns`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from flax import nnx

from fer_jax.errors import FerJaxError

_LEAF = {"kernel": "weight", "recurrent_kernel": "recurrent_weight", "scale": "weight",
         "mean": "running_mean", "var": "running_var"}


def default_key(path: tuple[str, ...]) -> str:
    """Our state path -> the torch state-dict key of the same tensor (modules named alike)."""
    return ".".join((*path[:-1], _LEAF.get(path[-1], path[-1])))


def to_torch_layout(leaf: str, value: np.ndarray) -> np.ndarray:
    """One of our tensors in torch's layout: kernels (*k, in, out) -> (out, in, *k); (in, out) -> (out, in)."""
    if leaf.endswith("kernel") and value.ndim >= 2:
        return np.moveaxis(value, (-1, -2), (0, 1))
    return value


def channels_first_columns(weight: np.ndarray, map_shape: tuple[int, ...]) -> np.ndarray:
    """A torch Linear weight (out, prod(map_shape)) whose columns read a channels-last map
    (*spatial, c) flattened -> the same weight for that map flattened channels first (c, *spatial)."""
    out = weight.shape[0]
    spatial = len(map_shape) - 1
    return weight.reshape(out, *map_shape).transpose(0, 1 + spatial, *range(1, 1 + spatial)).reshape(out, -1)


def copy_weights(
    jax_model: nnx.Module,
    torch_model,
    *,
    key_of: Callable[[tuple[str, ...]], str] = default_key,
    fixes: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> None:
    """Write every parameter and BatchNorm statistic of `jax_model` into `torch_model`.

    key_of: our path -> torch key (default: same names, `_LEAF` renamed); fixes: torch key -> a
    function applied after the layout change (e.g. `channels_first_columns` for a flatten).
    All or nothing: a tensor with no counterpart, a shape mismatch, or a torch tensor left without
    a value raises FerJaxError before anything is written.
    """
    import torch

    fixes = dict(fixes or {})
    target = torch_model.state_dict()
    values, problems = {}, []
    for path, variable in nnx.to_flat_state(nnx.state(jax_model, nnx.Any(nnx.Param, nnx.BatchStat))):
        path = tuple(str(p) for p in path)
        key = key_of(path)
        value = to_torch_layout(path[-1], np.asarray(variable.get_value(), np.float32))
        fix = fixes.pop(key, None)  # a permutation within the shape: applied once the shape is right
        if key not in target:
            problems.append(f"{'/'.join(path)} -> {key}: no such torch tensor")
        elif tuple(target[key].shape) != value.shape:
            problems.append(f"{'/'.join(path)} -> {key}: shape {value.shape}, torch has {tuple(target[key].shape)}")
        else:
            values[key] = value if fix is None else fix(value)
    unset = [k for k in target if k not in values and not k.endswith("num_batches_tracked")]
    problems += [f"torch tensor {k} gets no value" for k in unset]
    problems += [f"fix for {k} matched no tensor" for k in fixes]
    if problems:
        raise FerJaxError(f"copying {type(jax_model).__name__} into its torch peer: " + "; ".join(problems))
    with torch.no_grad():
        for key, value in values.items():
            target[key].copy_(torch.tensor(value))
