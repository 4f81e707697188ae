"""Where the job reads its inputs and writes its outputs.

The locations follow SageMaker's training-container layout under one base folder (``/opt/ml`` by
default, moved with ``SAGEMAKER_BASE_DIR`` exactly as the ``sagemaker-training`` toolkit does).
The toolkit's own ``SM_*`` variables override single locations when present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_BASE_DIR = "/opt/ml"
SPLITS = ("train", "val", "test")
# Where the code is: the folder of pytorch_training.py, beside contracts/ and hyperparams/.
PROGRAM_DIR = Path(__file__).resolve().parent.parent

# The channel a pipeline step uses to hand over precomputed imputation / risk tables.
ARTIFACTS_CHANNEL = "model_artifacts_input"
# The channel that holds an earlier job's model.tar.gz (or model/ files) to start the weights from.
PRETRAINED_MODEL_CHANNEL = "pretrained_model"
TRAINING_LOG_FOLDER = "tensorboard_train"  # in output/data; written live during training
TEXT_CACHE_FOLDER = "preprocessed"  # in the checkpoint folder, so a restarted job finds it


@dataclass(frozen=True)
class ContractPaths:
    """Every location of the script contract, resolved for one run."""

    base_dir: Path
    channels: Mapping[str, Path]
    artifacts_input_dir: Path
    pretrained_model_dir: Path
    code_hyperparameters: Path
    job_hyperparameters: Path
    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    checkpoints_dir: Path
    resource_config: Path
    tensorboard_dir: Path | None  # where SageMaker syncs TensorBoard logs from, when it does

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def training_log_dir(self) -> Path:
        return self.output_data_dir / TRAINING_LOG_FOLDER

    @property
    def text_cache_dir(self) -> Path:
        return self.checkpoints_dir / TEXT_CACHE_FOLDER

    def written_folders(self) -> dict[str, Path]:
        """What the job writes where, with the setting that moves it: the folders it must be able to write.

        A missing folder is fine when it can be created (SageMaker creates ``output/``; a local base
        folder may not have it yet); one whose parent cannot be created fails the check like a read-only one.
        """
        return {
            "the failure file (output/ of SAGEMAKER_BASE_DIR)": self.output_dir,
            "the model (SM_MODEL_DIR)": self.model_dir,
            "checkpoints and the text cache (checkpointconfig.json's LocalPath)": self.checkpoints_dir,
            "the evaluation files (SM_OUTPUT_DATA_DIR)": self.output_data_dir,
        }

    def with_outputs_in(self, folder: Path) -> ContractPaths:
        """The same inputs, with every location the job writes to moved into ``folder``."""
        return replace(
            self,
            model_dir=folder / "model",
            output_dir=folder / "output",
            output_data_dir=folder / "output" / "data",
            checkpoints_dir=folder / "checkpoints",
            tensorboard_dir=None,
        )


def resolve_paths(environ: Mapping[str, str] | None = None, program_dir: Path = PROGRAM_DIR) -> ContractPaths:
    """Resolve the contract from the environment (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    base = Path(env.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR)
    data_dir = base / "input" / "data"
    channels = {
        split: Path(env.get(f"SM_CHANNEL_{split.upper()}") or data_dir / split) for split in SPLITS
    }
    artifacts = Path(env.get(f"SM_CHANNEL_{ARTIFACTS_CHANNEL.upper()}") or data_dir / ARTIFACTS_CHANNEL)
    parent = Path(env.get(f"SM_CHANNEL_{PRETRAINED_MODEL_CHANNEL.upper()}") or data_dir / PRETRAINED_MODEL_CHANNEL)
    config_dir = base / "input" / "config"
    return ContractPaths(
        base_dir=base,
        channels=channels,
        artifacts_input_dir=artifacts,
        pretrained_model_dir=parent,
        code_hyperparameters=_shipped_hyperparameters(base, program_dir),
        job_hyperparameters=config_dir / "hyperparameters.json",
        model_dir=Path(env.get("SM_MODEL_DIR") or base / "model"),
        output_dir=base / "output",
        output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR") or base / "output" / "data"),
        checkpoints_dir=_local_path(config_dir / "checkpointconfig.json") or base / "checkpoints",
        resource_config=config_dir / "resourceconfig.json",
        tensorboard_dir=_tensorboard_dir(base, config_dir / "tensorboardoutputconfig.json"),
    )


def _shipped_hyperparameters(base: Path, program_dir: Path) -> Path:
    """``code/hyperparams/hyperparameters.json`` of the base folder, else the one beside the entry script.

    In the image ``/opt/ml/code`` is only a link to the code in ``/opt/program``: a host folder
    mounted over all of ``/opt/ml`` (``docker run -v DIR:/opt/ml``) hides the link, not the code.
    """
    in_base = base / "code" / "hyperparams" / "hyperparameters.json"
    beside_code = program_dir / "hyperparams" / "hyperparameters.json"
    return beside_code if not in_base.is_file() and beside_code.is_file() else in_base


def _local_path(platform_config: Path) -> Path | None:
    """The ``LocalPath`` of one of SageMaker's ``*config.json`` files (checkpoints, TensorBoard), if any."""
    if platform_config.is_file():
        try:
            local_path = json.loads(platform_config.read_text()).get("LocalPath")
        except (ValueError, AttributeError):
            local_path = None
        if local_path:
            return Path(local_path)
    return None


def _tensorboard_dir(base: Path, tensorboard_config: Path) -> Path | None:
    """``tensorboardoutputconfig.json``'s ``LocalPath``, else ``output/tensorboard`` when that folder exists
    (SageMaker creates it for a job with a TensorBoard output configuration)."""
    configured = _local_path(tensorboard_config)
    if configured is not None:
        return configured
    default = base / "output" / "tensorboard"
    return default if default.is_dir() else None
