"""Cross-block test of written hard cases (issue 22): does data aimed at the confusions of the
hidden set teach them, or only its own sentences?

Two blocks were written independently for the same four confusions (diplomacy talk, denials
of invasion plans, market reactions to the pullback, Russian rebuttals of Western scepticism):
the written statements and the targeted passages. Each block is scored after training on the
base data (every other file of the config) alone and on the base data plus the *other* block,
so a gain comes from what one writer's sentences teach about another's, not from
near-duplicates. Reported per hard topic (the rows' `topic` field): accuracy and how many
rows were wrongly called `doubts`, the error the hidden set showed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labels import LABEL2ID
from .cvfolds import Rows, Setting, load_rows

HARD_TOPICS = ("diplomacy", "denial", "markets", "rebuttal")
DOUBTS = LABEL2ID["doubts"]


@dataclass
class BlockScore:
    test: str
    train: str
    recipe: str
    macro_f1: float
    right: dict[str, tuple[int, int]]  # topic -> (right, rows), "all" included
    false_doubts: dict[str, int]


def topics(paths: list[str]) -> dict[str, str]:
    """text -> topic of the rows of the block files."""
    out: dict[str, str] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out[row["text"]] = row.get("topic", "-")
    return out


def score(name: tuple[str, str, str], rows: Rows, test: np.ndarray, probs: np.ndarray,
          topic: dict[str, str]) -> BlockScore:  # fmt: skip
    from sklearn.metrics import f1_score

    gold, pred = rows.labels[test], probs.argmax(1)
    kinds = np.array([topic[rows.texts[i]] for i in test])
    right, false = {}, {}
    for t in (*HARD_TOPICS, "all"):
        sel = np.ones(len(test), bool) if t == "all" else kinds == t
        right[t] = (int((pred[sel] == gold[sel]).sum()), int(sel.sum()))
        false[t] = int(((pred[sel] == DOUBTS) & (gold[sel] != DOUBTS)).sum())
    f1 = float(f1_score(gold, pred, average="macro"))
    return BlockScore(*name, macro_f1=f1, right=right, false_doubts=false)


def cross_block(
    setting: Setting, blocks: tuple[str, str], recipes: list[str], cache_dir: Path
) -> list[BlockScore]:
    """Each block scored after training on base and on base + the other block, per recipe:
    `frozen` (the frozen body's head) or a top-layer recipe of stance.evaluation.cvtop."""
    from .cvtable import frozen_fitter
    from .cvtop import top_fitter

    rows = load_rows(setting.cfg)
    src = rows.sources
    topic = topics(list(blocks))
    base = ~np.isin(src, blocks)
    out = []
    for recipe in recipes:
        if recipe == "frozen":
            fit = frozen_fitter(setting.cfg, rows, cache_dir)
        else:
            _, fit = top_fitter(setting, rows, recipe, cache_dir)
        for test_block, other in (blocks, blocks[::-1]):
            test = np.flatnonzero(src == test_block)
            both = (("base", base), (f"base + `{other}`", base | (src == other)))
            for train_name, train in both:
                probs = fit(np.flatnonzero(train), test)
                out.append(score((test_block, train_name, recipe), rows, test, probs, topic))
    return out


def markdown(scores: list[BlockScore]) -> str:
    head = ["test block", "trained on", "recipe", "macro-F1"]
    head += [f"{t}: right / rows (false doubts)" for t in (*HARD_TOPICS, "all")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in scores:
        cells = [f"`{s.test}`", s.train, s.recipe, f"{s.macro_f1:.3f}"]
        for t in (*HARD_TOPICS, "all"):
            cells.append(f"{s.right[t][0]} / {s.right[t][1]} ({s.false_doubts[t]})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
