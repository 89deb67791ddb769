"""PyTorch peers of fer-jax's models, for `fer-jax bench --against torch` (a benchmark aid).

Each peer is our own PyTorch implementation of the same network as one registered fer-jax model,
built from the same constructor arguments (`--model-kwargs` plus the shape arguments the bench
fills in), written the way a PyTorch user would write it for speed (see `timing`). They exist only
to measure fer-jax against a well-written PyTorch step on the same machine; training never imports
them. torch is a dev extra (`pip install 'fer-jax[dev]'`), imported only when a peer is used.
`tests/test_torch_peers.py` copies our initialised weights into each peer (`weights`) and checks
both compute the same forward pass.

    cnn3d_convlstm     cnn3d_convlstm.Cnn3dConvLstm
    msff_c3d           c3d.C3D
    msff_cnn_blstm     cnn_blstm.CnnBlstm (ResNet-18/-50 or VGG backbone + nn.LSTM)
    av_attention_fbp   av_attention.AvAttentionFbp (fbp fusion only)
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from fer_jax.errors import ConfigError

# Model name -> the module holding its peer (imported on use: it imports torch).
PEER_MODULES = {
    "cnn3d_convlstm": "cnn3d_convlstm",
    "msff_c3d": "c3d",
    "msff_cnn_blstm": "cnn_blstm",
    "av_attention_fbp": "av_attention",
}


def import_torch():
    try:
        import torch
    except ImportError:
        raise ConfigError("bench --against torch needs PyTorch: pip install 'fer-jax[dev]'") from None
    return torch


def peer(model: str):
    """(peer class, copy_weights(jax_model, torch_model)) of the registered model `model`."""
    if model not in PEER_MODULES:
        raise ConfigError(f"bench: no torch peer for {model!r}; peers exist for {', '.join(sorted(PEER_MODULES))}")
    import_torch()
    module = importlib.import_module(f"{__name__}.{PEER_MODULES[model]}")
    return module.PEERS[model]


def peer_arguments(model: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of the peer of `model`: every argument of fer-jax's model that
    shapes the network, with its defaults filled in from its signature (so the two cannot drift
    apart). One the peer does not implement is refused when it differs from its default."""
    from fer_jax.models import MODELS

    cls, _ = peer(model)
    factory = MODELS[model]
    params = inspect.signature(factory.__init__ if isinstance(factory, type) else factory).parameters
    ours = {name: p for name, p in params.items()
            if name not in ("self", "num_classes", "rngs", "dtype") and p.kind == p.KEYWORD_ONLY}
    unknown = sorted(set(kwargs) - set(ours) - {"dtype"})
    if unknown:
        raise ConfigError(f"bench: {model} takes no argument {', '.join(unknown)}")
    full = {name: kwargs.get(name, p.default) for name, p in ours.items()}
    accepted = set(inspect.signature(cls.__init__).parameters)
    missing = sorted(name for name, value in full.items() if name not in accepted and value != ours[name].default)
    if missing:
        raise ConfigError(f"bench: the torch peer of {model} does not implement {', '.join(missing)}")
    return {name: value for name, value in full.items() if name in accepted}


def build_peer(model: str, num_classes: int, kwargs: dict[str, Any]):
    """The peer of `model`, built with the arguments fer-jax's model gets from `kwargs`."""
    cls, _ = peer(model)
    try:
        return cls(num_classes, **peer_arguments(model, kwargs))
    except TypeError as e:  # a nested option (backbone_options, fusion_kwargs) it does not take
        raise ConfigError(f"bench: the torch peer of {model}: {e}") from None


def run_peer(model: str, kwargs: dict[str, Any], input_specs: dict, *, num_classes: int, batch: int,
             steps: int, precision: str, learning_rate: float, seed: int = 0,
             variants: tuple[str, ...] = ("eager", "compiled")) -> dict:
    """Time the peer's train step, eager and compiled; returns the report's torch_* entries.

    input_specs: {record key: (shape without the batch axis, numpy dtype)} of what the model reads.
    A variant that fails (e.g. torch.compile without a C++ compiler) is reported as its error,
    and the comparison uses the variants that ran.
    """
    from fer_jax.bench.peers import timing

    torch = import_torch()
    cls, _ = peer(model)
    build_peer(model, num_classes, kwargs)  # fails early on arguments the peer does not take
    device = timing.device_and_settings(torch, precision)
    torch.manual_seed(seed)
    data = timing.make_batch(torch, {k: input_specs[k] for k in cls.input_keys}, num_classes, batch, device, seed)
    report: dict[str, Any] = {
        "torch_version": torch.__version__, "torch_device": str(device), "torch_threads": torch.get_num_threads(),
        "torch_memory_format": str(cls.memory_format).removeprefix("torch."),
        "torch_autocast": "bf16" if precision == "bf16" else None,
    }
    for variant in variants:
        try:
            result = timing.time_variant(
                torch, lambda: build_peer(model, num_classes, kwargs), data, compiled=variant == "compiled",
                precision=precision, steps=steps, learning_rate=learning_rate, device=device)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - reported, and the other variant still counts
            report[f"torch_{variant}_error"] = f"{type(e).__name__}: {e}"
            continue
        report["torch_adam"] = result.pop("adam")
        report["torch_parameters"] = result.pop("parameters")
        report.update({f"torch_{variant}_{k}": v for k, v in result.items()})
    rates = [report[f"torch_{v}_clips_per_second"] for v in variants if f"torch_{v}_clips_per_second" in report]
    if not rates:
        raise ConfigError(f"bench: no torch variant ran: {report}")
    report["torch_best_clips_per_second"] = max(rates)
    return report
