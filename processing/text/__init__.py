"""The text chain: dialogue splitting, HTML and emoji cleaning, normalisation, chunked tokenization."""
