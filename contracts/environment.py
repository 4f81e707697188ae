"""Environment switches of the contract (everything else is configured by hyperparameters)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.errors import ConfigError

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off", ""}


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Read a true/false environment variable; an unrecognised spelling is an error, not False."""
    env = os.environ if environ is None else environ
    raw = env.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"Environment variable {name}={raw!r} is not a true/false value; "
        f"set it to one of: true, false, 1, 0, yes, no."
    )


@dataclass(frozen=True)
class RunSwitches:
    """The environment variables that change what a run does."""

    use_precomputed_imputation: bool
    use_precomputed_risk_tables: bool
    dry_run: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunSwitches:
        return cls(
            use_precomputed_imputation=env_flag("USE_PRECOMPUTED_IMPUTATION", environ),
            use_precomputed_risk_tables=env_flag("USE_PRECOMPUTED_RISK_TABLES", environ),
            dry_run=env_flag("DRY_RUN", environ),
        )
