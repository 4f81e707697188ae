"""Data in: split files, text chain, tabular encoders, labels, tensor datasets and collate."""
