"""Evaluation: metrics, figures, prediction files, TensorBoard events, and batch prediction (``python -m evaluation.predict``)."""
