"""Training runtime: processes and devices, data sharding, the Trainer, checkpoints and resume,
interruption, precision, progress output, logging."""
