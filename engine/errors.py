"""Errors a user can cause with a checkpoint or a request."""


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file, tensor or field."""


class HubError(CheckpointError):
    """A Hugging Face model id that cannot become a folder; the message names the id and what to do."""


class DoesNotFit(CheckpointError):
    """A checkpoint that needs more memory than the device has free; the message has the numbers."""


class DeviceUnavailable(ValueError):
    """A device this machine does not have (engine.registry.check_device); the message names it."""


class Cancelled(Exception):
    """Raised inside the denoising loop when the caller's cancel() returns True."""


class Unsupported(ValueError):
    """A request for something the model's family does not do (engine.api.Capabilities); the message names
    the field."""
