"""Project exceptions: every error a user can cause says what was wrong, where, and what to do."""


class FerJaxError(Exception):
    """Base class of the errors fer-jax raises on purpose."""


class InputError(FerJaxError):
    """A file the user gave (video, audio, label file) cannot be used.

    `path` names the file and `reason` is a short machine-readable key (used to count skipped files
    in build reports); the message is for people.
    """

    def __init__(self, path, reason: str, message: str):
        self.path = str(path)
        self.reason = reason
        self.message = message
        super().__init__(f"{path}: {message}")

    def __reduce__(self):
        # Rebuilt from its three fields, so it survives being sent back from a worker process.
        return (type(self), (self.path, self.reason, self.message))


class ConfigError(FerJaxError):
    """A config or a `--set` override is wrong."""


class CheckpointError(FerJaxError):
    """A checkpoint directory is missing, incomplete or does not match the config."""


class Preempted(FerJaxError):
    """Training stopped on SIGTERM/SIGINT after saving a checkpoint; rerunning resumes it.

    `fer-jax train` exits with EXIT_STATUS (75, sysexits' EX_TEMPFAIL: a temporary failure, retry)."""

    EXIT_STATUS = 75

    def __init__(self, message: str, step: int, signal_name: str):
        super().__init__(message)
        self.step, self.signal_name = step, signal_name

    def __reduce__(self):
        return (type(self), (str(self), self.step, self.signal_name))
