"""Inference: the engine (StancePredictor), the networks it runs (fast encoders, int8 kernels),
what it returns (records), relevance and the process tuning. Importing this package is cheap;
its modules import torch."""

DEFAULT_BATCH_SIZE = 64  # sentences per forward pass (`stance predict --batch-size`)
