"""model_class -> a built Classifier: each part named in ``hyperparams.model_classes`` made real.

Every class is text encoder(s) + (tabular encoder) + fusion + the shared head; with two text
columns each gets its own encoder. An inference process rebuilds a trained model from
``model_artifacts.pth`` and ``model.pth`` alone with ``build_from_artifacts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from contracts.errors import ConfigError
from hyperparams.config import Config
from hyperparams.model_classes import MODEL_SPECS, FusionKind, ModelSpec, TabularEncoderKind, TextEncoderKind
from models.backbone import Backbone
from models.classifier import Classifier
from models.embedding_encoders import CnnChunkEncoder, LstmChunkEncoder
from models.fusion import ConcatFusion, CrossAttentionFusion, GateFusion, MixtureOfExpertsFusion
from models.tabular_encoder import FeatureTokenizer, TabularEncoder
from models.text_encoders import BertChunkEncoder
from processing.dataset import TextKeys


def model_spec(model_class: str) -> ModelSpec:
    try:
        return MODEL_SPECS[model_class]
    except KeyError:
        raise ConfigError(f"model_class {model_class!r} is unknown; use one of {sorted(MODEL_SPECS)}") from None


def initial_word_embeddings(config: Config, backbone: Backbone) -> torch.Tensor | None:
    """The transformer's word-embedding matrix for models that start from one (CNN, LSTM), else None.

    It goes into ``model_artifacts.pth`` so that rebuilding such a model never loads a transformer.
    """
    return backbone.word_embeddings() if model_spec(config.model_class).starts_from_word_embeddings else None


def build_model(config: Config, backbone: Backbone, embedding_matrix: torch.Tensor | None = None) -> Classifier:
    """The model named by ``config.model_class``, with pretrained weights where the backbone has
    them. CNN and LSTM encoders start from ``embedding_matrix`` (default: the backbone's)."""
    spec = model_spec(config.model_class)
    dropout = 1.0 - config.dropout_keep
    if spec.starts_from_word_embeddings and embedding_matrix is None:
        embedding_matrix = backbone.word_embeddings()
    encoders = {
        role: _text_encoder(spec.text, config, backbone, embedding_matrix, dropout) for role in config.text_fields
    }
    tabular = _tabular_encoder(spec.tabular, config, dropout)
    fusion = _fusion(spec.fusion, config, list(encoders.values()), tabular, dropout)
    return Classifier(
        encoders, tabular, fusion, config.num_classes, config.hidden_common_dim, dropout, TextKeys.of(config)
    )


def build_from_artifacts(bundle: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> Classifier:
    """The trained model in eval mode, from ``model_artifacts.pth`` and ``model.pth`` (no training
    data, no pretrained checkpoint)."""
    config = Config.model_validate(bundle["config"])
    model = build_model(config, Backbone.from_dict(bundle["backbone_config"]), bundle.get("embedding_mat"))
    model.load_state_dict(state_dict)
    return model.eval()


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _text_encoder(
    kind: TextEncoderKind, config: Config, backbone: Backbone, embeddings: torch.Tensor | None, dropout: float
) -> nn.Module:
    if kind == "bert":
        return BertChunkEncoder(
            backbone,
            reinit_pooler=config.reinit_pooler,
            reinit_layers=config.reinit_layers,
            embeddings_trainable=config.is_embeddings_trainable,
            gradient_checkpointing=config.gradient_checkpointing,
        )
    if kind == "cnn":
        return CnnChunkEncoder(
            embeddings,
            kernel_sizes=config.kernel_size,
            channels=config.num_channels,
            dropout=dropout,
            embeddings_trainable=config.is_embeddings_trainable,
        )
    if kind == "lstm":
        return LstmChunkEncoder(
            embeddings,
            hidden=config.hidden_common_dim,
            num_layers=config.num_layers,
            dropout=dropout,
            embeddings_trainable=config.is_embeddings_trainable,
        )
    raise ValueError(f"no text encoder of kind {kind!r}; build it here (see docs/models.md)")


def _tabular_encoder(kind: TabularEncoderKind | None, config: Config, dropout: float) -> nn.Module | None:
    if kind == "mlp":
        return TabularEncoder(config.tabular_dim, config.hidden_common_dim, dropout)
    if kind == "feature_tokens":
        return FeatureTokenizer(config.tabular_dim, config.hidden_common_dim)
    if kind is None:
        return None
    raise ValueError(f"no tabular encoder of kind {kind!r}; build it here (see docs/models.md)")


def _fusion(
    kind: FusionKind, config: Config, encoders: list[nn.Module], tabular: nn.Module | None, dropout: float
) -> nn.Module:
    text_dims = [e.out_dim for e in encoders]
    dims = text_dims + ([tabular.out_dim] if tabular is not None else [])
    if kind == "concat":
        return ConcatFusion(dims)
    if kind == "gate":
        return GateFusion(dims, config.hidden_common_dim)
    if kind == "mixture_of_experts":
        return MixtureOfExpertsFusion(dims, config.hidden_common_dim, config.num_experts, dropout)
    if kind == "cross_attention":
        token_dims = [e.token_dim for e in encoders]
        return CrossAttentionFusion(text_dims, token_dims, tabular.num_features, config.hidden_common_dim, dropout)
    raise ValueError(f"no fusion of kind {kind!r}; build it here (see docs/models.md)")
