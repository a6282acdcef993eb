"""Small shared helpers: atomic file output, wording, charts, docs snippets."""
