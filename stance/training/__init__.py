"""The training machinery of every kind that trains a torch network: loop, batches, checkpoints."""
