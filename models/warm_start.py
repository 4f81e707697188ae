"""A new job's weights from an earlier job's model: the ``pretrained_model`` channel (warm start).

Monthly retraining on fresh data starts from last month's model instead of from the pretrained
transformer: the channel holds a previous job's ``model.tar.gz`` (as SageMaker packs ``model/``),
or the files of its ``model/`` folder (at the top of the channel, or in a ``model/`` folder in
it). Only the weights are taken over; the new job fits its preprocessing (imputation, risk tables,
the tabular feature scaling) on its own training data, and plans its own learning-rate schedule.

The parent must have the architecture this job builds: the same ``model_class``, text columns,
tokenizer (vocabulary and transformer shape), classes, tabular features and sizes.
``ParentModel.check`` compares them before any data is preprocessed and names every mismatch;
loading the weights (``initialise``) then checks each tensor's name and shape. The parent's
SHA-256 (of ``model.tar.gz``, or of ``model.pth`` when extracted) goes into the manifest.
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contracts.errors import ConfigError, DataError
from hyperparams.config import Config
from hyperparams.model_classes import MODEL_SPECS
from processing.cache import file_sha256

log = logging.getLogger(__name__)

WEIGHTS = "model.pth"
ARTIFACTS = "model_artifacts.pth"
# The transformer settings that decide the shape of its weights (and of the word embeddings CNN/LSTM start from).
BACKBONE_SHAPE = (
    "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "max_position_embeddings", "type_vocab_size",
)


@dataclass(frozen=True)
class ParentModel:
    """The weights and saved artifacts of the model a job starts from, and the file that identifies it."""

    source: Path  # model.tar.gz, or the model.pth of an extracted model/ folder
    sha256: str
    artifacts: dict[str, Any]  # its model_artifacts.pth
    state_dict: dict[str, torch.Tensor]

    @classmethod
    def find(cls, channel: Path) -> ParentModel | None:
        """The model in ``channel``; None when the channel is absent or empty."""
        if not channel.is_dir():
            return None
        present = sorted(p.name for p in channel.iterdir() if not p.name.startswith("."))
        if not present:
            return None
        for folder in (channel, channel / "model"):
            if (folder / WEIGHTS).is_file():
                return cls._from_folder(folder)
        archives = sorted(channel.glob("*.tar.gz"))
        if len(archives) == 1:
            return cls._from_archive(archives[0])
        what = f"several archives ({', '.join(a.name for a in archives)})" if archives else f"{present[:10]}"
        raise DataError(
            f"The pretrained_model channel {channel} holds {what}, not one model: give it a previous job's "
            f"model.tar.gz, or the files of its model/ folder ({WEIGHTS} and {ARTIFACTS})."
        )

    @classmethod
    def _from_folder(cls, folder: Path) -> ParentModel:
        artifacts = folder / ARTIFACTS
        if not artifacts.is_file():
            raise DataError(
                f"{folder} has {WEIGHTS} but no {ARTIFACTS}; copy the whole model/ folder of the previous job "
                "(or its model.tar.gz) into the channel."
            )
        weights = folder / WEIGHTS
        return cls(
            weights,
            file_sha256(weights),
            _load(artifacts.read_bytes(), artifacts),
            _load(weights.read_bytes(), weights),
        )

    @classmethod
    def _from_archive(cls, archive: Path) -> ParentModel:
        """Read in one pass over the compressed stream: only the two files needed are kept."""
        wanted = {WEIGHTS: None, ARTIFACTS: None}
        try:
            with tarfile.open(archive, "r|*") as stream:
                for member in stream:
                    parts = Path(member.name).parts
                    name = parts[-1] if parts else ""
                    inside = [p for p in parts[:-1] if p != "."]
                    if member.isfile() and name in wanted and inside in ([], ["model"]):
                        wanted[name] = stream.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(
                f"{archive} cannot be read as a tar archive ({exc}); give the model.tar.gz a training job wrote."
            ) from None
        missing = [name for name, content in wanted.items() if content is None]
        if missing:
            raise DataError(
                f"{archive} has no {' or '.join(missing)}; it must be the model.tar.gz of a training job of this "
                "container (model/ packed at the top of the archive)."
            )
        return cls(
            archive,
            file_sha256(archive),
            _load(wanted[ARTIFACTS], archive / ARTIFACTS),
            _load(wanted[WEIGHTS], archive / WEIGHTS),
        )

    def check(self, config: Config, vocab: Mapping[str, int], backbone: Mapping[str, Any]) -> None:
        """ConfigError naming every way this job's model would differ in shape from the parent's."""
        mismatches = [
            f"{what}: {theirs} there, {ours} here"
            for what, theirs, ours in _compared(self.artifacts, config, vocab, backbone)
            if theirs != ours
        ]
        if mismatches:
            raise ConfigError(
                f"The model in the pretrained_model channel ({self.source}) does not fit this job: "
                f"{'; '.join(mismatches)}. A warm start needs the parent's model_class, tokenizer, text columns, "
                "classes, tabular features and sizes: set them as in its model/hyperparameters.json, or remove the "
                "channel to train from the pretrained transformer."
            )

    def initialise(self, model: nn.Module) -> None:
        """Load the parent's weights into ``model`` (built with this job's config)."""
        ours = model.state_dict()
        missing = [k for k in ours if k not in self.state_dict]
        unexpected = [k for k in self.state_dict if k not in ours]
        reshaped = [
            f"{k} {tuple(self.state_dict[k].shape)} there, {tuple(v.shape)} here"
            for k, v in ours.items()
            if k in self.state_dict and self.state_dict[k].shape != v.shape
        ]
        if missing or unexpected or reshaped:
            problems = [
                *([f"missing {missing[:3]}"] if missing else []),
                *([f"not in this model {unexpected[:3]}"] if unexpected else []),
                *reshaped[:3],
            ]
            raise ConfigError(
                f"The weights in {self.source} do not fit the model this job builds ({'; '.join(problems)}); "
                "build it as the parent was built (its model/hyperparameters.json), or remove the pretrained_model "
                "channel."
            )
        model.load_state_dict(self.state_dict)

    def lineage(self) -> dict[str, Any]:
        """The manifest's ``parent_model`` entry."""
        return {
            "path": str(self.source.resolve()),
            "file": self.source.name,
            "bytes": self.source.stat().st_size,
            "sha256": self.sha256,
            "model_class": self.artifacts.get("model_class"),
        }


def _compared(
    artifacts: Mapping[str, Any], config: Config, vocab: Mapping[str, int], backbone: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """(what, the parent's, this job's), as shown in a message, for everything that decides the
    shape of the weights."""
    theirs = artifacts.get("config", {})
    if artifacts.get("model_class") != config.model_class:  # every other difference follows from this one
        return [("model_class", repr(artifacts.get("model_class")), repr(config.model_class))]
    spec = MODEL_SPECS[config.model_class]
    parent_backbone = artifacts.get("backbone_config", {})
    pairs: list[tuple[str, Any, Any]] = [
        (f"the transformer's {key}", parent_backbone.get(key), backbone.get(key))
        for key in BACKBONE_SHAPE
        if key in parent_backbone or key in backbone
    ]
    pairs += [
        ("the number of text columns", 2 if theirs.get("primary_text_name") is not None else 1,
         len(config.text_fields)),
        ("the classes", artifacts.get("id_to_label"), [str(label) for label in config.class_labels]),
        ("the tabular features", artifacts.get("tabular_feature_names"), config.tabular_feature_names),
        ("hidden_common_dim", theirs.get("hidden_common_dim"), config.hidden_common_dim),
    ]
    sizes = {"cnn": ("kernel_size", "num_channels", "num_layers"), "lstm": ("num_layers",)}.get(spec.text, ())
    sizes += ("num_experts",) if spec.fusion == "mixture_of_experts" else ()
    pairs += [(name, theirs.get(name), getattr(config, name)) for name in sizes]
    shown = [(what, repr(parent), repr(ours)) for what, parent, ours in pairs]
    parent_vocab = artifacts.get("vocab", {})
    if parent_vocab != dict(vocab):
        other = ", other tokens" if len(vocab) == len(parent_vocab) else ""
        shown.insert(0, (
            "the tokenizer",
            f"{theirs.get('tokenizer')!r} (a vocabulary of {len(parent_vocab):,})",
            f"{config.tokenizer!r} (a vocabulary of {len(vocab):,}{other})",
        ))
    return shown


def _load(content: bytes, where: Path) -> Any:
    try:
        return torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{where} cannot be loaded ({first_line}); give the files a training job wrote.") from None
