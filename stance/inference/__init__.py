"""Inference: the networks `stance predict` runs (fast encoders, int8 kernels) and the engine."""
