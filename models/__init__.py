"""Models: text and tabular encoders, fusion strategies, the classifier, the LightningModule, the registry."""
