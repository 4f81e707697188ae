"""Errors a user can act on.

Each carries a one-sentence message naming the field, file or value at fault and what to change;
the entry script writes that sentence as the first line of ``output/failure``.
"""


class UserError(Exception):
    """A problem with the job's inputs or configuration, not a bug in this code."""


class ConfigError(UserError):
    """A hyperparameter or environment variable is invalid."""


class DataError(UserError):
    """An input file is missing, unreadable, or does not match the configuration."""


class ExportError(UserError):
    """The trained model could not be exported or the export does not match PyTorch."""


class Interrupted(UserError):
    """The job was stopped from outside (job stop, spot interruption); the message says what was saved."""


class StorageError(UserError):
    """A folder the job writes to cannot be written (read-only, not permitted) or its disk is full."""
