"""Models: text and tabular encoders, fusion strategies, the classifier, and the registry that builds each class."""
