"""Does a sentence bear on the claim at all? Page furniture and off-topic text do not.

A stance classifier gives every input one of its labels, so "Advertisement" or a weather
line gets a confident "doubts" or "supports". Before such rows reach per-article counts and
the stance score, each sentence is judged by two tests:

1. furniture cues (`furniture_cue`): short patterns that mark page debris whatever the claim
   (advertisement slots, "READ MORE" teasers, "More Stories", template debris `{{}}`, photo
   credits and handouts, bylines, datelines, section labels, tags, a sentence repeated
   within its article); none may end like a sentence, so prose is not caught;
2. topicality: the cosine similarity between the claim and the sentence, from frozen
   all-MiniLM-L6-v2 sentence embeddings (mean-pooled over tokens, L2-normalised), blended
   with the mean cosine of its neighbours within `CONTEXT_WINDOW` sentences of the same
   article (`context_scores`, weight `CONTEXT_WEIGHT`); below `THRESHOLD` the sentence is
   off the claim. The context term is there because a reply such as "we have been told this
   before" bears on the claim only through the sentences around it.

`THRESHOLD` and `CONTEXT_WEIGHT` are chosen by `scripts/fit_relevance.py` on labelled
on/off-claim sentences (the seeds' skip and labelled rows, the written set in
data/relevance-offtopic.jsonl, the data-articles branch's written articles when present), by
whole-article cross-validation with a cost in which a dropped supports/doubts sentence costs
three times a kept off-claim one (benchmarks/relevance.py; the table is in BENCHMARKS.md).
The embedder is injectable (`Embedder`): tests use a tiny fake one.

Known limits (BENCHMARKS.md): an article about something else entirely (oil prices, weather)
is only partly left out, since such lines score as high as a terse reply on the claim; the
context term also keeps a stray off-topic line between claim sentences, and drops some
market paragraphs that the guide counts as neutral background.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

METHOD = "minilm-mean-cosine+context"
# Chosen by `python scripts/fit_relevance.py` (whole-article CV, cost-weighted); see
# benchmarks/relevance.py and BENCHMARKS.md.
THRESHOLD = 0.086
CONTEXT_WEIGHT = 0.75
CONTEXT_WINDOW = 2

_AGENCIES = "associated press|ap|reuters|afp|getty images|epa|shutterstock|pa"
_TEASERS = "read more|read also|see also|related( articles| stories)?|more stories|most read|"
_TEASERS += "recommended|watch|listen|most popular|key points|more on this story"
_SHARE = "share( this( article| story| page| update)?)?|follow us|subscribe|sign up|click here"
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = rf"(\d{{1,2}}\s+{_MONTH}|{_MONTH}\s+\d{{1,2}})(,?\s+\d{{4}})?"
_TIME = r"(,?\s*\d{1,2}[:.]\d{2}(\s*[ap]\.?m\.?)?(\s+[a-z]{2,4})?)?"
_WORD = r"[A-Z][\w&-]*"
_WEEKDAY = r"((mon|tues|wednes|thurs|fri|satur|sun)day,?\s+)?"
# What wire stories and news pages wrap around the text: none of it ends like a sentence.
_UNENDED = r"(?![^\n]*[.!?]['\"\u2019\u201d]?\s*$)"
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("advertisement", re.compile(r"^\W*(advertisement|advertising|sponsored|ad)\W*$", re.I)),
    ("read more", re.compile(rf"^\W*({_TEASERS})\s*(:|\||$)", re.I)),
    ("read more", re.compile(rf"^{_UNENDED}\W*(more (from|on) |follow our |live:)", re.I)),
    ("template", re.compile(r"\{\{.*?\}\}|\{%.*?%\}|^\W+$|^\W*/[^/]{1,40}/\W*$")),
    # A caption's credit glued to its last sentence ("...on January 18.Associated Press"),
    # or a "Photo:" / "Credit:" label.
    ("photo credit", re.compile(
        rf"(?<=[.!?])\s*({_AGENCIES})\W*$|^\W*(photo|picture|image|credit|copyright)s?\s*:|\u00a9",
        re.I)),
    ("photo credit", re.compile(
        rf"^{_UNENDED}.{{0,50}}\b(handout|pool photo|photo by|image via|images? by|"
        rf"getty images|press service)\b.{{0,40}}$", re.I)),
    ("share", re.compile(rf"^\W*({_SHARE})\W*$", re.I)),
    # "By Moscow Bureau, Newswire"; "(Reporting by ...; Editing by ...)"
    ("byline", re.compile(rf"^{_UNENDED}[Bb]y\s+[A-Z][\w.'-]*(\s+[\w.'&-]+){{0,5}}(,\s*[\w ]+)?$")),
    ("byline", re.compile(r"^\W*(reporting|writing|editing|additional reporting) by\b", re.I)),
    # "16 February 2022", "Updated 4:52 PM ET, Tue February 15, 2022", "MOSCOW, February 16."
    ("dateline", re.compile(
        rf"^\W*((updated|published|posted|last updated)\b.{{0,30}}?)?"
        rf"([A-Z][\w .'-]{{0,30}},\s*([A-Z][\w ]{{0,20}}\s*[-\u2013]\s*)?)?"
        rf"{_WEEKDAY}{_DATE}{_TIME}\W*$", re.I)),
    ("tags", re.compile(r"^\W*(tags|topics|related topics)\s*:", re.I)),
    # A section label: one to three capitalised words, or words split by "|" ("World | Europe")
    ("section", re.compile(rf"^(?=.{{2,40}}$)(?=.*[a-z]){_WORD}(\s+(\|\s+)?{_WORD}){{0,2}}$")),
)  # fmt: skip
# All-caps teasers ("BREAKING: ...", "WATCH") are short; long capitalised lines are headlines.
_CAPS_TEASER = re.compile(r"^[^a-z]{2,40}$")


def furniture_cue(sentence: str, earlier: set[str] | None = None) -> str | None:
    """The name of the furniture cue `sentence` matches, or None.

    `earlier`: the article's previous sentences (case-folded); a repeat is furniture
    (a headline printed twice, a caption under every photo).
    """
    text = sentence.strip()
    for name, pattern in _CUES:
        if pattern.search(text):
            return name
    if _CAPS_TEASER.match(text) and any(c.isalpha() for c in text):
        return "all-caps teaser"
    if earlier is not None and text.casefold() in earlier:
        return "repeated"
    return None


def article_cues(sentences: Sequence[str]) -> list[str | None]:
    """`furniture_cue` of every sentence of one article, in order."""
    seen: set[str] = set()
    cues = []
    for s in sentences:
        cues.append(furniture_cue(s, seen))
        seen.add(s.strip().casefold())
    return cues


class Embedder(Protocol):
    """Anything that maps texts to L2-normalised vectors (N, D)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """Frozen all-MiniLM-L6-v2 sentence embeddings: mean pooling, L2 norm (its own recipe)."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 64, max_length: int = 128):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from ..kinds.backbones import minilm_path
        from ..rundir.files import check_model_dir

        self.path = check_model_dir(path) if path is not None else minilm_path()
        self.model = AutoModel.from_pretrained(self.path, use_safetensors=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.batch_size, self.max_length = batch_size, max_length
        self._torch = torch

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # less padding per batch
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                sel = order[b : b + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in sel],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**enc).last_hidden_state  # (B, T, H)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
                out[sel] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


def context_scores(
    similarity: np.ndarray, weight: float, window: int = CONTEXT_WINDOW
) -> np.ndarray:
    """One article's cosines blended with their neighbours': (1 - w) * own + w * mean of the
    others within `window` sentences (a lone sentence keeps its own)."""
    sim = np.asarray(similarity, dtype=np.float64)
    if weight == 0 or len(sim) < 2:
        return sim.astype(np.float32)
    csum = np.concatenate([[0.0], np.cumsum(sim)])
    idx = np.arange(len(sim))
    lo, hi = np.maximum(idx - window, 0), np.minimum(idx + window + 1, len(sim))
    ctx = (csum[hi] - csum[lo] - sim) / (hi - lo - 1)
    return ((1 - weight) * sim + weight * ctx).astype(np.float32)


@dataclass
class Relevance:
    """Per sentence: bears on the claim?, its cosine to the claim, the furniture cue."""

    on_claim: np.ndarray  # (N,) bool
    similarity: np.ndarray  # (N,) float
    cues: list[str | None]


class RelevanceScorer:
    """Judges sentences against one claim; the claim's embedding is computed once."""

    def __init__(
        self,
        embedder: Embedder,
        claim: str,
        threshold: float = THRESHOLD,
        context_weight: float = CONTEXT_WEIGHT,
    ):
        self.embedder = embedder
        self.claim = claim
        self.threshold = float(threshold)
        self.context_weight = float(context_weight)
        self._claim_vec = embedder.encode([claim])[0]

    def similarity(self, sentences: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each sentence to the claim; a repeated sentence is embedded
        once (news repeats sentences, and the embedder's answer depends on the text alone)."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        distinct = list(dict.fromkeys(sentences))
        sims = self.embedder.encode(distinct) @ self._claim_vec
        if len(distinct) == len(sentences):
            return sims
        where = {text: i for i, text in enumerate(distinct)}
        return sims[[where[s] for s in sentences]]

    def judge(self, articles: Sequence[Sequence[str]]) -> list[Relevance]:
        """One Relevance per article; all sentences embedded in one batched pass."""
        flat = [s for sents in articles for s in sents]
        sims = self.similarity(flat)
        out, at = [], 0
        for sents in articles:
            sim = sims[at : at + len(sents)]
            cues = article_cues(sents)
            score = context_scores(sim, self.context_weight)
            keep = (score >= self.threshold) & np.array([c is None for c in cues], dtype=bool)
            out.append(Relevance(keep, sim, cues))
            at += len(sents)
        return out

    def settings(self) -> dict[str, Any]:
        """What the judgement depends on (part of a prediction run's resume header)."""
        embedder = type(self.embedder).__name__
        return {
            "method": METHOD,
            "threshold": self.threshold,
            "context_weight": self.context_weight,
            "context_window": CONTEXT_WINDOW,
            "embedder": embedder,
        }


def load_scorer(
    claim: str, embedder: Embedder | None = None, threshold: float = THRESHOLD
) -> RelevanceScorer:
    """A scorer with the bundled MiniLM embedder unless one is given."""
    if embedder is None:
        embedder = MiniLMEmbedder()
        logger.info("relevance: %s, threshold %.3f", METHOD, threshold)
    return RelevanceScorer(embedder, claim, threshold)
