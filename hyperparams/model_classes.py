"""The model classes a job can train, each described by the parts it is made of.

This table is the one place that names the model classes: the ``model_class`` field accepts its
keys, the configuration rules read from it which classes are text-only and which fine-tune a
transformer, and ``models.registry`` builds each class from its parts. Adding a class starts
here (see docs/models.md, "Adding a model class").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TextEncoderKind = Literal["bert", "cnn", "lstm"]
TabularEncoderKind = Literal["mlp", "feature_tokens"]
FusionKind = Literal["concat", "gate", "mixture_of_experts", "cross_attention"]


@dataclass(frozen=True)
class ModelSpec:
    text: TextEncoderKind  # one encoder of this kind per text column
    tabular: TabularEncoderKind | None  # None: the class reads text only
    fusion: FusionKind

    def __post_init__(self) -> None:
        if self.fusion == "cross_attention" and self.tabular != "feature_tokens":
            raise ValueError(
                "cross_attention fusion needs the feature_tokens tabular encoder: its queries are feature tokens"
            )
        if self.fusion in ("gate", "mixture_of_experts", "cross_attention") and self.tabular is None:
            raise ValueError(
                f"{self.fusion} fusion weighs modalities against each other; a text-only class uses concat"
            )

    @property
    def fine_tunes_transformer(self) -> bool:
        """Whether a pretrained transformer is trained (and ``lr`` applies to it)."""
        return self.text == "bert"

    @property
    def starts_from_word_embeddings(self) -> bool:
        """CNN and LSTM encoders start from the transformer's word-embedding matrix."""
        return self.text in ("cnn", "lstm")


MODEL_SPECS: dict[str, ModelSpec] = {
    "multimodal_bert": ModelSpec("bert", "mlp", "concat"),
    "multimodal_cnn": ModelSpec("cnn", "mlp", "concat"),
    "multimodal_moe": ModelSpec("bert", "mlp", "mixture_of_experts"),
    "multimodal_gate_fusion": ModelSpec("bert", "mlp", "gate"),
    "multimodal_cross_attn": ModelSpec("bert", "feature_tokens", "cross_attention"),
    "bert": ModelSpec("bert", None, "concat"),
    "lstm": ModelSpec("lstm", None, "concat"),
}
MODEL_CLASSES: tuple[str, ...] = tuple(MODEL_SPECS)
TEXT_ONLY_MODELS: tuple[str, ...] = tuple(name for name, spec in MODEL_SPECS.items() if spec.tabular is None)
BERT_MODELS: tuple[str, ...] = tuple(name for name, spec in MODEL_SPECS.items() if spec.fine_tunes_transformer)
