"""What the SageMaker platform tells a training container besides the hyperparameters.

- The cluster: ``input/config/resourceconfig.json`` (``current_host``, ``hosts``,
  ``network_interface_name``), which the platform writes for every training job. The ``SM_HOSTS``,
  ``SM_CURRENT_HOST`` and ``SM_NETWORK_INTERFACE_NAME`` variables hold the same facts but only the
  ``sagemaker-training`` toolkit sets them, and this image's ``train`` starts the job without it;
  when they are set they win.
- Hyperparameters of its own: every key that starts with ``sagemaker_`` and the keys the toolkit
  lists beside them (``_tuning_objective_metric``, which a hyperparameter tuning job adds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import ConfigError

PLATFORM_PREFIX = "sagemaker_"
PLATFORM_KEYS = frozenset({"_tuning_objective_metric"})


def is_platform_key(name: str) -> bool:
    """A hyperparameter SageMaker or its toolkit adds for itself, not one of the job's."""
    return name.startswith(PLATFORM_PREFIX) or name in PLATFORM_KEYS


@dataclass(frozen=True)
class Cluster:
    """The hosts of a SageMaker job, in sorted order (the first is the master), and this one."""

    hosts: tuple[str, ...]
    current_host: str
    network_interface: str | None
    source: str  # where the facts came from, for the log and for messages

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def master(self) -> str:
        return self.hosts[0]


def read_cluster(environ: Mapping[str, str], resource_config: Path) -> Cluster | None:
    """The job's hosts from the ``SM_*`` variables, else from ``resourceconfig.json``; None outside SageMaker."""
    if environ.get("SM_HOSTS"):
        try:
            hosts = json.loads(environ["SM_HOSTS"])
        except ValueError:
            hosts = None
        if not _names(hosts):
            raise ConfigError(
                f"SM_HOSTS={environ['SM_HOSTS']!r} is not a JSON list of host names, e.g. [\"algo-1\", \"algo-2\"]."
            )
        return _cluster(hosts, environ.get("SM_CURRENT_HOST", ""), environ.get("SM_NETWORK_INTERFACE_NAME"), "SM_HOSTS")
    if not resource_config.is_file():
        return None
    try:
        data = json.loads(resource_config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{resource_config} is not valid JSON ({exc}); SageMaker writes it, so check the mount."
        ) from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not _names(hosts):
        raise ConfigError(
            f"{resource_config} has no list of host names under 'hosts'; SageMaker writes it, so check the mount."
        )
    return _cluster(hosts, str(data.get("current_host", "")), data.get("network_interface_name"), str(resource_config))


def _names(hosts: object) -> bool:
    return isinstance(hosts, list) and bool(hosts) and all(isinstance(h, str) and h for h in hosts)


def _cluster(hosts: list[str], current: str, interface: str | None, source: str) -> Cluster:
    ordered = tuple(sorted(hosts))
    if current not in ordered:
        raise ConfigError(
            f"The current host {current!r} is not one of the hosts {list(ordered)} in {source}; SageMaker sets both, "
            "so check a hand-made environment or resourceconfig.json."
        )
    return Cluster(ordered, current, interface or None, source)
