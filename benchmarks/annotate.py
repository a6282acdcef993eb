"""Does active learning pay for `stance annotate`? A simulated annotator on the seed labels.

Leave one article out: the annotator labels sentences of the other two articles in the order
the tool asks for them (the seed labels are the oracle; page furniture is answered `skip`,
costs a question and teaches nothing), the head retrains every `retrain_every` labels as in
the tool, and at each budget of labels a head fitted on the labels so far is scored (macro-F1)
on the held-out article. Arms: `random` (random_share 1), `uncertainty` (the tool's default
share of random picks) and `uncertainty only` (share 0). The head and queue are the tool's
own (`LogisticHead`, `ActiveQueue`); the embedder is the bundled MiniLM, each sentence
embedded once. Retraining here is synchronous; in the tool it runs in the background and
takes well under a second, inside the seconds a person needs for the next label.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path

from stance.annotate.active import ActiveQueue
from stance.annotate.learner import CachedEmbedder, Embedder, LogisticHead
from stance.labels import LABEL2ID
from stance.metrics import compute_metrics
from stance.util.plots import new_figure, save_figure

from .common import SEED_DATA, table

logger = logging.getLogger(__name__)

BUDGETS = (5, 10, 15, 20, 30)
ARMS = {"random": 1.0, "uncertainty (share 0.2)": 0.2, "uncertainty only": 0.0}


def oracle_rows(path: str | Path = SEED_DATA) -> list[dict]:
    """The seed rows as (article, text, answer); skip rows answer `skip`."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [
        {"article": r["article_id"], "text": r["text"], "answer": r.get("label") or "skip"}
        for r in rows
    ]


def _macro_f1(head: LogisticHead, texts: list[str], labels: list[str], test: list[dict]) -> float:
    probs = head.fit(texts, labels).predict_proba([r["text"] for r in test])
    gold = [LABEL2ID[r["answer"]] for r in test]
    return compute_metrics(probs.argmax(axis=1).tolist(), gold)["macro_f1"]


def run_once(
    head: LogisticHead,
    pool: list[dict],
    test: list[dict],
    share: float,
    seed: int,
    budgets: Sequence[int],
    retrain_every: int,
) -> dict:
    """One simulated session: macro-F1 at each budget reached, then with every label."""
    queue = ActiveQueue(len(pool), share, seed)
    pool_texts = [r["text"] for r in pool]
    texts: list[str] = []
    labels: list[str] = []
    scores: dict[str, float] = {}
    asked = 0
    while (pick := queue.pick()) is not None:
        i = pick[0]
        queue.mark(i)
        asked += 1
        if pool[i]["answer"] == "skip":
            continue
        texts.append(pool[i]["text"])
        labels.append(pool[i]["answer"])
        if len(labels) % retrain_every == 0:
            queue.set_probs(head.fit(texts, labels).predict_proba(pool_texts))
        if len(labels) in budgets:
            scores[str(len(labels))] = _macro_f1(head, texts, labels, test)
            scores[f"asked@{len(labels)}"] = asked
    scores["all"] = _macro_f1(head, texts, labels, test)
    return scores


def learning_curves(
    embedder: Embedder,
    seeds: int = 20,
    budgets: Sequence[int] = BUDGETS,
    retrain_every: int = 5,
    c: float = 1.0,
    arms: dict[str, float] | None = None,
) -> dict:
    """Every (fold, arm, seed) run; the mean and std per (arm, budget) over folds x seeds."""
    rows = oracle_rows()
    head = LogisticHead(CachedEmbedder(embedder), c=c)
    head.prepare([r["text"] for r in rows])  # every sentence embedded once
    runs = []
    for held in sorted({r["article"] for r in rows}):
        pool = [r for r in rows if r["article"] != held]
        test = [r for r in rows if r["article"] == held and r["answer"] != "skip"]
        for arm, share in (arms or ARMS).items():
            for seed in range(seeds):
                scores = run_once(head, pool, test, share, seed, budgets, retrain_every)
                runs.append({"fold": held, "arm": arm, "seed": seed, **scores})
            logger.info("fold %s, %s: done", held, arm)
    return {"runs": runs, "budgets": [*map(str, budgets), "all"], "seeds": seeds, "c": c}


def summary(result: dict) -> dict[str, dict[str, tuple[float, float, int]]]:
    """arm -> budget -> (mean, std, runs) over every fold and seed that reached the budget."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for arm in dict.fromkeys(r["arm"] for r in result["runs"]):
        out[arm] = {}
        for budget in result["budgets"]:
            values = [r[budget] for r in result["runs"] if r["arm"] == arm and budget in r]
            if values:
                std = statistics.pstdev(values) if len(values) > 1 else 0.0
                out[arm][budget] = (statistics.fmean(values), std, len(values))
    return out


def paired_gain(result: dict, arm: str, base: str = "random") -> dict[str, tuple[float, float]]:
    """budget -> (mean, standard error) of arm minus base, paired by fold and seed.

    Both arms draw the same random picks until the first fit, and the same folds; pairing
    removes the spread between folds, which dwarfs the difference between orders.
    """
    by_key = {(r["fold"], r["seed"], r["arm"]): r for r in result["runs"]}
    out = {}
    for budget in result["budgets"]:
        diffs = [
            r[budget] - by_key[(r["fold"], r["seed"], base)][budget]
            for r in result["runs"]
            if r["arm"] == arm and budget in r and budget in by_key[(r["fold"], r["seed"], base)]
        ]
        if len(diffs) > 1:
            out[budget] = (statistics.fmean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5)
    return out


def format_table(result: dict) -> str:
    stats = summary(result)
    headers = ["order", *(f"{b} labels" if b != "all" else "all labels" for b in result["budgets"])]
    rows = [
        [arm, *(f"{m:.3f} ± {s:.3f}" if n else "-" for m, s, n in per.values())]
        for arm, per in stats.items()
    ]
    for arm in stats:
        if arm != "random":
            gains = paired_gain(result, arm)
            cells = [
                f"{m:+.3f} ± {se:.3f}" if b in gains else "-"
                for b in result["budgets"]
                for m, se in [gains.get(b, (0.0, 0.0))]
            ]
            rows.append([f"{arm} - random (paired, ± s.e.)", *cells])
    text = table(headers, rows)
    if "20" in result["budgets"]:
        runs = result["runs"]
        asked = [
            f"{arm}: {statistics.fmean(r['asked@20'] for r in runs if r['arm'] == arm):.1f}"
            for arm in stats
        ]
        text += "\nsentences asked to get 20 labels (skips included): " + ", ".join(asked)
    return text


def plot(result: dict, path: str | Path) -> None:
    """Learning curves (mean macro-F1 +- std per label budget), one line per arm."""
    stats = summary(result)
    fig = new_figure((6, 3.6))
    ax = fig.subplots()
    for arm, per in stats.items():
        points = [(int(b), m, s) for b, (m, s, _) in per.items() if b != "all"]
        xs, ms, ss = zip(*points, strict=True)
        ax.plot(xs, ms, marker="o", label=arm)
        ax.fill_between(
            xs,
            [m - s for m, s in zip(ms, ss, strict=True)],
            [m + s for m, s in zip(ms, ss, strict=True)],
            alpha=0.12,
        )
    ax.set_xlabel("labels (skips not counted)")
    ax.set_ylabel("macro-F1, held-out article")
    ax.set_title("stance annotate: head on MiniLM embeddings, leave one article out", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
