"""Training runtime: Trainer assembly, data loaders, precision, progress output, logging."""
