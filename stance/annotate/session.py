"""One annotator's session: what to show, label, undo, and retraining in the background.

Every request runs under one lock, and the label is written to the labels file (`store`)
before the answer goes back, so two submits of the same sentence write one row and the page
only moves on once its label is on disk. Fitting the head and scoring every sentence run on
one background thread, outside the lock: the page never waits for them, and the queue is
re-ranked when they finish. The sentence on screen stays on screen across a re-rank.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import StanceError
from ..labels import LABELS
from .active import ActiveQueue
from .learner import Learner, Scorer
from .sentences import Sentence
from .store import SKIP, LabelStore, make_row, row_choice

logger = logging.getLogger(__name__)

NEIGHBOURS = 2  # sentences of context on each side


class SessionError(StanceError):
    """A request the session refuses; `status` is the HTTP status the server answers."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


class _Worker:
    """One daemon thread that runs submitted jobs in order (it never blocks exit)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        threading.Thread(target=self._run, daemon=True, name="annotate-learner").start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._jobs.put(job)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # a failed fit must not stop labelling: keep the last scorer
                logger.exception("background job failed; suggestions stay as they were")
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.set()


class AnnotationSession:
    """Sentences, the labels file, the queue and the learner, behind one lock."""

    def __init__(
        self,
        sentences: Sequence[Sentence],
        store: LabelStore,
        learner: Learner | None = None,
        initial: tuple[str, Scorer] | None = None,
        random_share: float = 0.2,
        retrain_every: int = 5,
        seed: int = 0,
    ):
        if retrain_every < 1:
            raise StanceError("--retrain-every must be at least 1")
        self.sentences = list(sentences)
        self.store = store
        self.learner = learner
        self.initial = initial
        self.retrain_every = retrain_every
        self.queue = ActiveQueue(len(self.sentences), random_share, seed)
        self._index = {s.id: i for i, s in enumerate(self.sentences)}
        self._lock = threading.Lock()
        self._worker = _Worker()
        self.current: tuple[int, str] | None = None
        self.probs: np.ndarray | None = None
        self.source: str | None = None  # what the suggestions come from
        self.fits = 0
        self._since_fit = 0
        self._fit_queued = False
        self._resume()

    def _resume(self) -> None:
        for row in self.store.rows:
            i = self._index.get(row["id"])
            if i is None:
                continue  # labelled from another input: kept in the file and for training
            if row["text"] != self.sentences[i].text:
                logger.warning(
                    "%s: %s was labelled with other text; the labelled text is kept and "
                    "this sentence is not asked",
                    self.store.path,
                    row["id"],
                )
            self.queue.mark(i)
        if self.store.rows:
            logger.info(
                "resuming %s: %d rows labelled, %d sentences left",
                self.store.path,
                len(self.store.rows),
                self.queue.left,
            )

    # ------------------------------------------------------------ background work

    def start(self) -> None:
        """Queue the first scoring (the model), embedding warm-up and a fit on resumed labels."""
        texts = [s.text for s in self.sentences]
        if self.initial is not None:
            self._worker.submit(self._score_initial)
        prepare = getattr(self.learner, "prepare", None)
        if prepare is not None:
            self._worker.submit(lambda: prepare(texts))
        with self._lock:
            if len(self._training_set()[0]) >= self.retrain_every:
                self._request_fit()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until background jobs are done (tests, benchmarks)."""
        return self._worker.wait_idle(timeout)

    def _score_initial(self) -> None:
        assert self.initial is not None
        name, scorer = self.initial
        probs = scorer.predict_proba([s.text for s in self.sentences])
        with self._lock:
            if self.fits == 0:  # a head trained meanwhile knows this claim's labels better
                self._set_probs(probs, name)

    def _training_set(self) -> tuple[list[str], list[str]]:
        rows = [r for r in self.store.rows if row_choice(r) != SKIP]
        return [r["text"] for r in rows], [r["label"] for r in rows]

    def _request_fit(self) -> None:
        self._since_fit = 0
        if self.learner is not None and not self._fit_queued:
            self._fit_queued = True
            self._worker.submit(self._fit)

    def _fit(self) -> None:
        assert self.learner is not None
        with self._lock:
            self._fit_queued = False
            texts, labels = self._training_set()
        if not texts:
            return
        scorer = self.learner.fit(texts, labels)
        probs = scorer.predict_proba([s.text for s in self.sentences])
        with self._lock:
            self.fits += 1
            self._set_probs(probs, f"head trained on {len(texts)} labels")
        logger.info("retrained on %d labels; queue re-ranked", len(texts))

    def _set_probs(self, probs: np.ndarray, source: str) -> None:
        self.queue.set_probs(probs)
        self.probs = np.asarray(probs)
        self.source = source

    # ------------------------------------------------------------ requests

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._state()

    def label(self, sentence_id: str, choice: str) -> dict[str, Any]:
        """Record a label (or `skip`) for one sentence, on disk, then answer the new state."""
        if choice not in (*LABELS, SKIP):
            raise SessionError(f"unknown label {choice!r}", 400)
        with self._lock:
            i = self._index.get(sentence_id)
            if i is None:
                raise SessionError(f"no sentence {sentence_id!r} in this session", 404)
            if sentence_id in self.store:
                raise SessionError(f"{sentence_id} is labelled already")
            try:
                self.store.add(make_row(self.sentences[i], self.store.claim, choice))
            except OSError as e:  # disk full, folder gone: say so; the page stays put
                raise SessionError(f"could not save to {self.store.path}: {e}", 503) from None
            self.queue.mark(i)
            if self.current is not None and self.current[0] == i:
                self.current = None
            if choice != SKIP:
                self._since_fit += 1
                if self._since_fit >= self.retrain_every:
                    self._request_fit()
            return self._state(last={"id": sentence_id, "label": choice})

    def undo(self) -> dict[str, Any]:
        """Remove the last label from the file and show its sentence again."""
        with self._lock:
            try:
                row = self.store.pop()
            except OSError as e:
                raise SessionError(f"could not save to {self.store.path}: {e}", 503) from None
            if row is None:
                raise SessionError("nothing to undo")
            i = self._index.get(row["id"])
            if i is not None:
                self.queue.mark(i, done=False)
                self.current = (i, "undo")
            return self._state(undone={"id": row["id"], "label": row_choice(row)})

    # ------------------------------------------------------------ the state the page shows

    def _state(self, **extra: Any) -> dict[str, Any]:
        if self.current is None or self.queue.done[self.current[0]]:
            self.current = self.queue.pick()
        counts = Counter(row_choice(r) for r in self.store.rows)
        return {
            "claim": self.store.claim,
            "item": None if self.current is None else self._item(*self.current),
            "progress": {
                "labelled": sum(counts[label] for label in LABELS),
                "skipped": counts[SKIP],
                "left": self.queue.left,
                "total": len(self.sentences),
                "counts": {label: counts[label] for label in (*LABELS, SKIP)},
            },
            "model": {"source": self.source, "training": self._worker.busy, "fits": self.fits},
            "can_undo": bool(self.store.rows),
            "output": str(self.store.path),
            **extra,
        }

    def _item(self, i: int, why: str) -> dict[str, Any]:
        s = self.sentences[i]
        lo, hi = max(0, i - NEIGHBOURS), min(len(self.sentences), i + NEIGHBOURS + 1)
        same = [j for j in range(lo, hi) if self.sentences[j].article_id == s.article_id]
        suggestion = None
        if self.probs is not None:
            p = self.probs[i]
            best = int(np.argmax(p))
            suggestion = {
                "label": LABELS[best],
                "p": round(float(p[best]), 3),
                "probs": {label: round(float(p[k]), 3) for k, label in enumerate(LABELS)},
            }
        return {
            "id": s.id,
            "article_id": s.article_id,
            "sentence_index": s.sentence_index,
            "text": s.text,
            "before": [self.sentences[j].text for j in same if j < i],
            "after": [self.sentences[j].text for j in same if j > i],
            "why": why,
            "suggestion": suggestion,
        }
