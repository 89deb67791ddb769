"""What the training loop does about faults: preemption signals and non-finite steps.

Preemption: SIGTERM (what schedulers and `kill` send) or SIGINT (Ctrl-C) sets a flag; the loop reads
it after each step, saves a checkpoint at that step and raises `Preempted`, which `fer-jax train`
turns into exit status 75 (EX_TEMPFAIL: "try again"). A second signal while that checkpoint is
being written gets the default behaviour back, so a second Ctrl-C still stops a stuck save.

Non-finite steps: every step returns a tiny boolean `finite` (loss and gradient norm both finite).
The loop keeps those scalars, without fetching them, and reads all of them at once before anything
is logged, evaluated or saved: no device sync per step, yet no step goes unchecked, and no
checkpoint is ever written from a state a bad step touched (in "error" mode).
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fer_jax.errors import ConfigError, FerJaxError

NONFINITE_MODES = ("error", "skip")


class NonFiniteLossError(FerJaxError):
    """A training step produced a non-finite loss or gradient (`step`, `quantity` name them)."""

    def __init__(self, message: str, step: int | None = None, quantity: str | None = None):
        super().__init__(message)
        self.step, self.quantity = step, quantity


class PreemptionGuard:
    """Context manager: while active, SIGTERM and SIGINT only set `requested` (main thread only;
    elsewhere signals cannot be caught and nothing changes)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name
        for sig, handler in self._previous.items():  # a second signal acts as if we were not here
            signal.signal(sig, handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.getsignal(sig) for sig in self.SIGNALS}
            for sig in self.SIGNALS:
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def preemption_requested(guard: PreemptionGuard, step: int) -> bool:
    """Whether to stop after `step`. With several processes every one must stop at the same step
    (they run collectives), so they ask JAX's preemption sync point, which needs
    `jax.distributed.initialize()`; a local signal alone would let them disagree."""
    if jax.process_count() == 1:
        return guard.requested
    from jax.experimental import multihost_utils

    try:
        return multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError:  # no preemption service in this cluster set-up
        return False


def check_mode(mode: str) -> None:
    if mode not in NONFINITE_MODES:
        raise ConfigError(f"train.nonfinite={mode!r}: choose one of {NONFINITE_MODES}")


def select_if_finite(finite: jax.Array, new_state, old_state):
    """`new_state` where `finite`, else `old_state`, leaf by leaf (inside the jitted step): a skipped
    step leaves parameters, optimizer moments and its step count as they were. RNG streams
    (nnx.RngState: keys and counts) still advance: the skipped batch has used its dropout draw up."""

    def pick(new, old):
        if isinstance(new, nnx.RngState):
            return new
        return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

    return jax.tree.map(pick, new_state, old_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


@dataclasses.dataclass
class NonFiniteMonitor:
    """Collects each step's metrics (device arrays, not fetched) and checks them in one fetch."""

    mode: str = "error"
    max_skipped: int = 0
    skipped: int = 0  # steps skipped so far in this run, resumed runs included
    pending: list = dataclasses.field(default_factory=list)  # (step, metrics) not yet checked

    def add(self, step: int, metrics: dict) -> None:
        self.pending.append((step, metrics))

    def check(self, checkpoint_note: Callable[[], str]) -> dict | None:
        """Fetch the pending metrics; raise on the first bad step ("error" mode, or "skip" mode past
        max_skipped); return the metrics of the last pending step (None if none were pending)."""
        if not self.pending:
            return None
        fetched = jax.device_get([m for _, m in self.pending])
        steps = [s for s, _ in self.pending]
        self.pending = []
        for step, metrics in zip(steps, fetched):
            if bool(metrics["finite"]):
                continue
            quantity = "loss" if not np.isfinite(metrics["loss"]) else "grad_norm (the gradient)"
            value = metrics["loss"] if quantity == "loss" else metrics["grad_norm"]
            if self.mode == "skip":
                self.skipped += 1
                if self.skipped <= self.max_skipped:
                    continue
                raise NonFiniteLossError(
                    f"step {step}: {quantity} is {value}, and {self.skipped} steps have now been skipped for "
                    f"non-finite values (train.max_skipped_steps={self.max_skipped}); {checkpoint_note()}",
                    step, quantity.split()[0])
            raise NonFiniteLossError(
                f"step {step}: {quantity} is {value}; training stopped before any state it touched was saved. "
                f"{checkpoint_note()}. Lower train.learning_rate, check the data, or set train.nonfinite=skip "
                "to skip rare bad batches", step, quantity.split()[0])
        return fetched[-1]
