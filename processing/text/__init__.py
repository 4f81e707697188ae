"""The text chain: dialogue splitting, HTML and emoji cleaning, normalisation, chunked tokenization."""

from processing.text.pipeline import TextPipeline, build_text_pipeline, is_uncased
from processing.text.ragged import RaggedChunks

__all__ = ["RaggedChunks", "TextPipeline", "build_text_pipeline", "is_uncased"]
