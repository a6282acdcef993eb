"""Data: statement files, public corpora importers, sentence segmentation, negation."""
