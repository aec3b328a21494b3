"""Training: models, trainer, checkpoints."""
