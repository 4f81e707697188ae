"""Evaluation after training: metrics, figures, prediction files and TensorBoard events in ``output/data``."""
