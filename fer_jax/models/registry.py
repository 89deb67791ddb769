"""Model registry: configs name a model by string, so adding one is a new file plus `@register`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from flax import nnx

from fer_jax.errors import ConfigError

# name -> class (or factory) taking (num_classes, *, rngs, **kwargs) and returning an nnx.Module.
MODELS: dict[str, Callable[..., nnx.Module]] = {}

_F = TypeVar("_F", bound=Callable[..., nnx.Module])


def register(name: str) -> Callable[[_F], _F]:
    """Class decorator that makes `build_model(name, ...)` construct the decorated model."""

    def decorator(factory: _F) -> _F:
        previous = MODELS.get(name)
        # Same module + qualname means a re-import (e.g. importlib.reload), not a clash.
        if previous is not None and _qualified_name(previous) != _qualified_name(factory):
            raise ValueError(
                f"Model name {name!r} is already registered to {_qualified_name(previous)}; "
                f"pick another name for {_qualified_name(factory)}."
            )
        MODELS[name] = factory
        return factory

    return decorator


def build_model(name: str, *, num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
    """Builds the registered model `name` with `num_classes` outputs; kwargs go to its constructor.

    Raises ConfigError for an unknown name or for keyword arguments the model does not take, so a
    typo in an experiment config fails at start-up with the list of valid choices.
    """
    if name not in MODELS:
        known = ", ".join(sorted(MODELS)) or "(none registered)"
        raise ConfigError(f"Unknown model {name!r}. Known models: {known}.")
    factory = MODELS[name]
    _check_kwargs(name, factory, kwargs)
    return factory(num_classes, rngs=rngs, **kwargs)


def _check_kwargs(name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    # Checked up front rather than by catching TypeError, which would also swallow real bugs
    # raised inside a constructor. __init__ is read directly because nnx.Module's metaclass hides
    # a class's own signature behind (*args, **kwargs).
    target = factory.__init__ if isinstance(factory, type) else factory
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = {
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    } - {"self", "num_classes", "rngs"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"Model {name!r} does not take {', '.join(unknown)}. "
            f"Its options are: {', '.join(sorted(accepted)) or '(none)'}."
        )


def _qualified_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def check_frames(model_name: str, frames, in_channels: int) -> None:
    """Raise ConfigError unless `frames` is a (B, T, H, W, in_channels) video batch."""
    if frames.ndim != 5 or frames.shape[-1] != in_channels:
        raise ConfigError(
            f"{model_name} expects frames (B, T, H, W, {in_channels}), got {frames.shape}; "
            "set in_channels to match the data."
        )


def choose_subset(model_name: str, option: str, given, choices: tuple[str, ...]) -> tuple[str, ...]:
    """A model's choice of some of `choices` (its modalities or branches) -> those names in the order
    of `choices`, so a config's order never changes the parameter tree or the fusion's branch order.

    A bare string is one name. Raises ConfigError for an empty choice, an unknown name or a repeat.
    """
    names = (given,) if isinstance(given, str) else tuple(given)
    if not names or not set(names) <= set(choices) or len(set(names)) != len(names):
        raise ConfigError(
            f"{model_name}: {option} must be a non-empty subset of {choices} without repeats, got {names}."
        )
    return tuple(c for c in choices if c in names)
