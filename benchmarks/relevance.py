"""Fit and report the relevance rule (stance.inference.relevance).

The rule in use is chosen by `cv_fit` on labelled on/off-claim sentences (`labelled_articles`:
the seeds' skip rows (off) and labelled rows (on), the written set in
data/relevance-offtopic.jsonl, and the written articles of the data-articles branch when they
are there): for each held-out article, the (context weight, threshold) with the least cost on
the other articles is applied to it; the pooled held-out decisions give the reported
precision and recall. A dropped supports/doubts sentence costs COST_DROPPED_STANCE, any other
mistake (a kept off-claim sentence, a dropped neutral one) costs 1: a lost stance sentence
biases the article's score, a kept neutral-ish one only dilutes it.

The FNC-1 threshold rule below (`fit_and_report`) is the earlier one, kept for comparison
when ../shared/data/fnc1 is available:

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stance.data.importers import _read_table
from stance.data.segment import split_sentences
from stance.inference.relevance import (
    CONTEXT_WEIGHT,
    THRESHOLD,
    RelevanceScorer,
    article_cues,
    context_scores,
)
from stance.labels import DEFAULT_CLAIM

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

COST_DROPPED_STANCE = 3.0
# The rule before this fit (FNC-1, the cut keeping 98% of related first sentences, no
# context): the "before" row of the report.
FNC1_THRESHOLD = 0.096
CONTEXT_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
WRITTEN = ROOT / "data" / "relevance-offtopic.jsonl"
# Another branch's written articles with page furniture (used when present, never required).
EXTRA_ARTICLES = Path("/work/wt-data-articles/data/withdrawal-articles.jsonl")


@dataclass
class LabelledArticle:
    """One article's sentences, whether each bears on the claim, and whether it takes a side."""

    article_id: str
    texts: list[str]
    on: list[bool]
    stance: list[bool]  # labelled supports or doubts


def _row_on_claim(row: dict) -> bool:
    return bool(row["on_claim"]) if "on_claim" in row else not row.get("skip", False)


def labelled_articles(paths: Sequence[Path] | None = None) -> list[LabelledArticle]:
    """Sentences grouped by article (file order) from statement files with `skip` or
    `on_claim`; rows with another claim are left out (the rule is judged on the default)."""
    if paths is None:
        paths = [SEED_DATA, WRITTEN] + ([EXTRA_ARTICLES] if EXTRA_ARTICLES.exists() else [])
    out: dict[str, LabelledArticle] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("claim", DEFAULT_CLAIM) != DEFAULT_CLAIM:
                continue
            key = f"{Path(path).stem}/{row['article_id']}"
            art = out.setdefault(key, LabelledArticle(key, [], [], []))
            art.texts.append(row["text"])
            art.on.append(_row_on_claim(row))
            art.stance.append(row.get("label") in ("supports", "doubts"))
    return list(out.values())


@dataclass
class Scored:
    """Per article: cosines to the claim and furniture cues (computed once)."""

    article: LabelledArticle
    sims: np.ndarray
    no_cue: np.ndarray


def score_articles(embedder, articles: Sequence[LabelledArticle]) -> list[Scored]:
    judged = RelevanceScorer(embedder, DEFAULT_CLAIM).judge([a.texts for a in articles])
    return [
        Scored(a, j.similarity, np.array([c is None for c in j.cues], dtype=bool))
        for a, j in zip(articles, judged, strict=True)
    ]


def decide(scored: Sequence[Scored], weight: float, threshold: float) -> np.ndarray:
    """Kept (on the claim) for every sentence of `scored`, concatenated."""
    return np.concatenate(
        [(context_scores(s.sims, weight) >= threshold) & s.no_cue for s in scored]
    )


def cost(kept: np.ndarray, on: np.ndarray, stance: np.ndarray) -> float:
    dropped = on & ~kept
    return float(
        COST_DROPPED_STANCE * (dropped & stance).sum()
        + (dropped & ~stance).sum()
        + (kept & ~on).sum()
    )


def _gold(scored: Sequence[Scored]) -> tuple[np.ndarray, np.ndarray]:
    on = np.concatenate([np.array(s.article.on, dtype=bool) for s in scored])
    stance = np.concatenate([np.array(s.article.stance, dtype=bool) for s in scored])
    return on, stance


def best_rule(scored: Sequence[Scored], weights=CONTEXT_WEIGHTS) -> tuple[float, float]:
    """(context weight, threshold) of least cost on `scored`; ties: the lower weight, then
    the cut midway between the neighbouring scores."""
    on, stance = _gold(scored)
    best: tuple[float, float, float] | None = None
    for w in weights:
        values = np.unique(np.concatenate([context_scores(s.sims, w) for s in scored]))
        cuts = np.concatenate([[values[0] - 1e-3], (values[1:] + values[:-1]) / 2])
        for t in cuts:
            c = cost(decide(scored, w, float(t)), on, stance)
            if best is None or c < best[0]:
                best = (c, w, float(t))
    assert best is not None
    return best[1], round(best[2], 4)


def cv_fit(scored: Sequence[Scored], weights=CONTEXT_WEIGHTS) -> tuple[np.ndarray, list]:
    """Leave-one-article-out: each article judged by the rule fitted on the others.

    Returns the held-out decisions (in `scored` order) and the rule chosen per fold."""
    kept, rules = [], []
    for i, held in enumerate(scored):
        w, t = best_rule([s for j, s in enumerate(scored) if j != i], weights)
        kept.append(decide([held], w, t))
        rules.append((held.article.article_id, w, t))
    return np.concatenate(kept), rules


def before_report(embedder, old_module_path: Path) -> str:
    """An earlier stance/inference/relevance.py
    (e.g. `git show REV:stance/inference/relevance.py > FILE`): its
    own cues and THRESHOLD (cosine only) on the same labelled set, overall and per source."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("stance._relevance_before", old_module_path)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old  # dataclasses look their module up
    spec.loader.exec_module(old)
    scored = score_articles(embedder, labelled_articles())
    on, stance = _gold(scored)
    kept = np.concatenate(
        [
            (s.sims >= old.THRESHOLD)
            & np.array([c is None for c in old.article_cues(s.article.texts)])
            for s in scored
        ]
    )
    rows = [pr_row(f"before: {old_module_path.name}, cosine >= {old.THRESHOLD}", kept, on)]
    rows[0].append(cost(kept, on, stance))
    rows += _source_rows(scored, kept, on, stance)
    return table([*HEADERS, "cost"], rows)


def _source_rows(scored, kept, on, stance) -> list[list[object]]:
    """The CV rule's held-out decisions on each source file separately."""
    source = np.array([s.article.article_id.split("/")[0] for s in scored for _ in s.sims])
    return [
        pr_row(f" on {name}", kept[source == name], on[source == name])
        + [cost(kept[source == name], on[source == name], stance[source == name])]
        for name in dict.fromkeys(source)
    ]


def cv_report(embedder) -> tuple[tuple[float, float], str]:
    """The rule fitted on every article, and the CV table (held-out P/R, cost) as text."""
    articles = labelled_articles()
    scored = score_articles(embedder, articles)
    on, stance = _gold(scored)
    cv_kept, rules = cv_fit(scored)
    cosine_kept, _ = cv_fit(scored, weights=(0.0,))
    w, t = best_rule(scored)
    old = decide(scored, 0.0, FNC1_THRESHOLD)
    now = decide(scored, CONTEXT_WEIGHT, THRESHOLD)
    rows = [
        pr_row(f"cosine >= {FNC1_THRESHOLD} (FNC-1 fit), today's cues", old, on)
        + [cost(old, on, stance)],
        pr_row(f"in stance/inference/relevance.py: weight {CONTEXT_WEIGHT}, {THRESHOLD}", now, on)
        + [cost(now, on, stance)],
        pr_row("CV, cosine only (weight 0)", cosine_kept, on) + [cost(cosine_kept, on, stance)],
        pr_row("CV, cosine + context (weight chosen)", cv_kept, on) + [cost(cv_kept, on, stance)],
        pr_row(f"all data, chosen: weight {w}, threshold {t}", decide(scored, w, t), on)
        + [cost(decide(scored, w, t), on, stance)],
    ]
    rows += [[f"CV rule{r[0]}", *r[1:]] for r in _source_rows(scored, cv_kept, on, stance)]
    texts = [x for s in scored for x in s.article.texts]
    wrong = [
        f"  {'on-claim dropped' if on[i] else 'off-claim kept'}: {texts[i][:90]}"
        for i in np.flatnonzero(cv_kept != on)
    ]
    chosen = ", ".join(sorted({f"({rw}, {rt})" for _, rw, rt in rules}))
    report = (
        f"{len(scored)} articles, {len(on)} sentences ({int(on.sum())} on the claim, "
        f"{int((on & stance).sum())} of them supports/doubts; {int((~on).sum())} off); cost: "
        f"dropped stance sentence {COST_DROPPED_STANCE:g}, other mistakes 1\n"
        "CV = leave one article out; on = kept as bearing on the claim\n"
        + table([*HEADERS, "cost"], rows)
        + f"\nrules chosen in the CV folds (weight, threshold): {chosen}\n"
        + "held-out mistakes of the CV rule:\n"
        + ("\n".join(wrong) or "  none")
    )
    return (w, t), report


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


__all__ = [
    "ROOT",
    "best_rule",
    "cv_fit",
    "cv_report",
    "fit_and_report",
    "fnc1_pairs",
    "labelled_articles",
    "pr_row",
    "recall_threshold",
    "seed_rows",
]
