"""The job's configuration: the Config model, SageMaker string coercion, loading, the model classes and shared rules."""
