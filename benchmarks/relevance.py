"""Fit and report the relevance threshold (stance.relevance): FNC-1 to fit, seeds to report.

Fitting data (FNC-1 `train_*`): a headline against the first sentence of a body related to
it (on the claim) and against a random sentence of a body labelled unrelated to it (off).
Related bodies hold off-topic sentences too, so only their first sentence, which states the
story, is taken as on the claim.

The rule: the threshold keeps RECALL_TARGET (98%) of those first sentences. Dropping a
stance-bearing sentence biases an article's score, while an off-topic sentence that slips
through is often caught by a furniture cue, so recall of on-claim text comes first. The
Youden point (largest TPR - FPR) is printed beside it for comparison; it sits much higher,
because unrelated FNC-1 bodies are easy negatives. The report covers FNC-1's
`competition_test_*` pairs, built the same way, and the seed annotations (skip rows against
labelled rows, against the default claim), neither of which the fit sees.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stance.importers import _read_table
from stance.labels import DEFAULT_CLAIM
from stance.relevance import RelevanceScorer, article_cues
from stance.segment import split_sentences

from .common import ROOT, SEED_DATA, table

RECALL_TARGET = 0.98
FNC1_SPLITS = {
    "train": ("train_stances.csv", "train_bodies.csv"),
    "test": ("competition_test_stances.csv", "competition_test_bodies.csv"),
}


def fnc1_pairs(
    src: Path, split: str, n: int, seed: int = 0
) -> tuple[list[str], list[str], np.ndarray]:
    """(headlines, sentences, on_claim): n related first sentences and n unrelated ones."""
    stances, bodies_file = FNC1_SPLITS[split]
    bodies = {
        v["Body ID"]: v["articleBody"]
        for _, v in _read_table(src / bodies_file, ("Body ID", "articleBody"))
    }
    by_kind: dict[bool, list[tuple[str, str]]] = defaultdict(list)
    for _, v in _read_table(src / stances, ("Headline", "Body ID", "Stance")):
        by_kind[v["Stance"] != "unrelated"].append((v["Headline"], v["Body ID"]))
    rng = random.Random(seed)
    headlines, sentences, labels = [], [], []
    for related in (True, False):
        pairs = rng.sample(by_kind[related], min(n, len(by_kind[related])))
        for headline, body in pairs:
            text = bodies[body]
            # Sentences never cross a line, so the first line gives the first sentence.
            sents = split_sentences(text.strip().split("\n", 1)[0] if related else text)
            if not sents:
                continue
            headlines.append(headline)
            sentences.append(sents[0] if related else rng.choice(sents))
            labels.append(related)
    return headlines, sentences, np.array(labels, dtype=bool)


def pair_similarity(embedder, claims: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
    """Cosine of each (claim, sentence) pair; every distinct claim embedded once."""
    unique = sorted(set(claims))
    claim_vecs = embedder.encode(unique)
    index = {c: i for i, c in enumerate(unique)}
    sent_vecs = embedder.encode(list(sentences))
    return np.einsum("nd,nd->n", claim_vecs[[index[c] for c in claims]], sent_vecs)


def youden_threshold(sims: np.ndarray, on_claim: np.ndarray) -> float:
    """The cut (midway between neighbouring scores) that maximises TPR - FPR."""
    values = np.unique(sims)
    cuts = (values[1:] + values[:-1]) / 2
    tpr = np.array([(sims[on_claim] >= c).mean() for c in cuts])
    fpr = np.array([(sims[~on_claim] >= c).mean() for c in cuts])
    return float(cuts[int(np.argmax(tpr - fpr))])


def recall_threshold(sims: np.ndarray, on_claim: np.ndarray, recall: float) -> float:
    """The largest cut that keeps at least `recall` of the on-claim pairs."""
    return float(np.quantile(sims[on_claim], 1 - recall, method="lower"))


def pr_row(name: str, kept: np.ndarray, on_claim: np.ndarray) -> list[object]:
    """Precision/recall of both classes: kept (on the claim) and left out (off it)."""

    def pr(pred: np.ndarray, gold: np.ndarray) -> tuple[str, str]:
        tp = int((pred & gold).sum())
        p = f"{tp / pred.sum():.3f}" if pred.sum() else "-"
        r = f"{tp / gold.sum():.3f}" if gold.sum() else "-"
        return p, r

    on_p, on_r = pr(kept, on_claim)
    off_p, off_r = pr(~kept, ~on_claim)
    return [name, len(kept), int(on_claim.sum()), on_p, on_r, int((~on_claim).sum()), off_p, off_r]


HEADERS = ["data / rule", "n", "on", "on P", "on R", "off", "off P", "off R"]


def seed_rows(path: Path = SEED_DATA) -> tuple[list[list[str]], np.ndarray]:
    """The seed sentences grouped by article (in order), and whether each is labelled (on)."""
    articles: dict[str, list[str]] = {}
    on = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        articles.setdefault(row["article_id"], []).append(row["text"])
        on.append(not row.get("skip", False))
    return list(articles.values()), np.array(on, dtype=bool)


def fit_and_report(embedder, fnc1_dir: Path, n: int = 1000, seed: int = 0) -> tuple[float, str]:
    """Fit the threshold on FNC-1 train; the report table (FNC-1 test, seeds) as text."""
    claims, sents, on = fnc1_pairs(fnc1_dir, "train", n, seed)
    sims = pair_similarity(embedder, claims, sents)
    threshold = recall_threshold(sims, on, RECALL_TARGET)
    youden = youden_threshold(sims, on)
    t_claims, t_sents, t_on = fnc1_pairs(fnc1_dir, "test", n, seed)
    t_sims = pair_similarity(embedder, t_claims, t_sents)
    articles, seed_on = seed_rows()
    judged = RelevanceScorer(embedder, DEFAULT_CLAIM, threshold).judge(articles)
    s_sims = np.concatenate([j.similarity for j in judged])
    no_cue = np.array([c is None for a in articles for c in article_cues(a)], dtype=bool)
    rows = [
        pr_row("FNC-1 train (the fit), cosine", sims >= threshold, on),
        pr_row("FNC-1 test, cosine", t_sims >= threshold, t_on),
        pr_row("seeds, cosine only", s_sims >= threshold, seed_on),
        pr_row("seeds, furniture cues only", no_cue, seed_on),
        pr_row(
            "seeds, both (stance predict)", np.concatenate([j.on_claim for j in judged]), seed_on
        ),
        pr_row(f"for comparison: Youden {youden:.3f}, FNC-1 test", t_sims >= youden, t_on),
        pr_row(f"for comparison: Youden {youden:.3f}, seeds, cosine", s_sims >= youden, seed_on),
    ]
    kept = np.concatenate([j.on_claim for j in judged])
    texts = [t for a in articles for t in a]
    wrong = [
        f"  {'labelled row left out' if seed_on[i] else 'skip row kept'}: cosine "
        f"{s_sims[i]:.3f}: {texts[i][:90]}"
        for i in np.flatnonzero(kept != seed_on)
    ]
    report = (
        f"threshold {threshold:.4f}: keeps {RECALL_TARGET:.0%} of the on-claim pairs of "
        f"{len(on)} FNC-1 train pairs ({int(on.sum())} on / {int((~on).sum())} off); "
        f"Youden point {youden:.4f}\n"
        "on = kept as bearing on the claim, off = left out; P/R = precision/recall of each\n"
        + table(HEADERS, rows)
        + "\nseed rows the rule gets wrong (cosine and furniture cues together):\n"
        + ("\n".join(wrong) or "  none")
    )
    return threshold, report


__all__ = ["ROOT", "fit_and_report", "fnc1_pairs", "pr_row", "recall_threshold", "seed_rows"]
