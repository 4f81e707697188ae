"""Evaluation: metrics, curves, prediction files and TensorBoard events."""
