"""The script contract: fixed locations under /opt/ml, environment switches, user-facing errors."""

from contracts.environment import RunSwitches, env_flag
from contracts.errors import ConfigError, DataError, ExportError, Interrupted, UserError
from contracts.paths import SPLITS, ContractPaths, resolve_paths

__all__ = [
    "SPLITS",
    "ConfigError",
    "ContractPaths",
    "DataError",
    "ExportError",
    "Interrupted",
    "RunSwitches",
    "UserError",
    "env_flag",
    "resolve_paths",
]
