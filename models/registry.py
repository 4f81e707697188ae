"""model_class -> a built Classifier. The one place that knows which parts make each model."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from hyperparams import Config
from models.backbone import Backbone
from models.classifier import Classifier
from models.fusion import ConcatFusion
from models.tabular_encoder import TabularEncoder
from models.text_encoders import BertChunkEncoder
from processing.dataset import TextKeys


def text_keys(config: Config) -> TextKeys:
    return TextKeys(config.text_input_ids_key, config.text_attention_mask_key)


def _bert_encoder(config: Config, backbone: Backbone) -> nn.Module:
    return BertChunkEncoder(
        backbone,
        reinit_pooler=config.reinit_pooler,
        reinit_layers=config.reinit_layers,
        embeddings_trainable=config.is_embeddings_trainable,
        gradient_checkpointing=config.gradient_checkpointing,
    )


def _multimodal_bert(config: Config, backbone: Backbone) -> Classifier:
    dropout = 1.0 - config.dropout_keep
    encoders = {role: _bert_encoder(config, backbone) for role in config.text_fields}
    tabular = TabularEncoder(config.tabular_dim, config.hidden_common_dim, dropout)
    fusion = ConcatFusion([e.out_dim for e in encoders.values()], tabular.out_dim)
    return Classifier(encoders, tabular, fusion, config.num_classes, config.hidden_common_dim, dropout, text_keys(config))


BUILDERS: dict[str, Callable[[Config, Backbone], Classifier]] = {
    "multimodal_bert": _multimodal_bert,
}


def build_model(config: Config, backbone: Backbone) -> Classifier:
    """The model named by ``config.model_class``, with pretrained weights where the backbone has them."""
    try:
        builder = BUILDERS[config.model_class]
    except KeyError:
        raise NotImplementedError(f"model_class {config.model_class!r} is not built yet") from None
    return builder(config, backbone)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
