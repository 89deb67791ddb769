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
