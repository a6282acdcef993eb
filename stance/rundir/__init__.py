"""The run directory: the files of a trained model, written and read here, and its model card."""
