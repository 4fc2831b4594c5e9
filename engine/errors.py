"""Errors a user can cause with a checkpoint or a request."""


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file, tensor or field."""


class Cancelled(Exception):
    """Raised inside the denoising loop when the caller's cancel() returns True."""
