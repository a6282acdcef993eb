"""`stance annotate`: label a new claim's sentences in a local web page, with model suggestions.

Modules by concern:

- `sentences`: articles -> sentences (the same readers and errors as `stance predict`);
- `store`: the labels file, in the guide's JSON Lines, rewritten atomically on every change;
- `learner`: the suggestion models behind one small interface (`fit(texts, labels) -> scorer`):
  a class-balanced logistic regression on cached frozen sentence embeddings, or a run directory;
- `active`: the queue that picks the next sentence (least margin, plus a share of random picks);
- `session`: one annotator's session: state, label, undo, background retraining;
- `server`: the Flask app and its request guards; `page.html`: the page.
"""
