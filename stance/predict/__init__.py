"""`stance predict`: inputs, options, the run across processes, outputs and summaries."""
