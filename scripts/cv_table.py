"""Issue #22's CV table: few-shot recipes on the same whole-article folds, as Markdown.

    python scripts/cv_table.py --data seeds=configs/withdrawal.yaml \\
        [--data written=configs/withdrawal-written.yaml] [--recipes frozen frozen+cal ...] \\
        [--tuned-on seeds] [--folds K] [--output docs/results/cv.md]

Each `--data NAME=CONFIG` is one block of the table (the config's data.train: `cv_score`
files are held out one article at a time and scored, the others only train). Recipes are
those of stance.evaluation.cvtable; tuned ones (lpft, full, setfit, ensemble) run only on
the blocks named by `--tuned-on` (each costs minutes a fold on a CPU). `--folds K` deals the
scored articles into K folds of whole articles, the same for every recipe (default: one fold
per article).
With `frozen` among the recipes, a second table gives each recipe against it on the same
folds: pooled macro-F1 difference, its paired article bootstrap, macro-F1 per fold. Prints
the tables with date, machine and this command, and writes them to `--output`. Every number
comes from this run (or the on-disk caches of embeddings and tuned probabilities, which are
keyed by config, data content and folds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shlex
import sys
from pathlib import Path

from stance.evaluation.cvfolds import Setting, fold_ids, load_rows
from stance.evaluation.cvreport import (
    HEADER,
    SPREAD_HEADER,
    machine,
    score,
    spread,
    spread_row,
    table_row,
)
from stance.evaluation.cvtable import ENSEMBLE_TOP, RECIPES, TUNED, recipe_oof
from stance.evaluation.cvtop import TOP

CACHE = Path.home() / ".cache" / "stance" / "cvtable"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", action="append", required=True, help="NAME=CONFIG (repeatable)")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    p.add_argument("--tuned-on", nargs="*", default=None, help="blocks for tuned recipes")
    p.add_argument(
        "--folds",
        type=int,
        default=0,
        help="K: scored articles dealt round-robin into K folds, the same for every recipe "
        "(default 0: one fold per article)",
    )
    p.add_argument("--set", nargs="*", default=[], help="config overrides for every block")
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--cache-dir", type=Path, default=CACHE)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    frozen = {"frozen", "frozen+cal"}
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    spreads = [SPREAD_HEADER, "|" + "---|" * SPREAD_HEADER.count(" | ") + "---|"]
    for spec in args.data:
        name, _, config = spec.partition("=")
        setting = Setting(config, list(args.set))
        rows = load_rows(setting.cfg)
        scored = rows.scored
        done: dict = {}
        for recipe in args.recipes:
            if recipe not in frozen and args.tuned_on is not None and name not in args.tuned_on:
                continue
            oof = recipe_oof(setting, rows, recipe, args.cache_dir, done, args.folds)
            s = score(oof.probs, rows.labels[scored], rows.groups[scored])
            lines.append(table_row(name, recipe, int(scored.sum()), s, oof.seconds_per_fold))
            print(lines[-1], file=sys.stderr, flush=True)
        if "frozen" in done and len(done) > 1:  # every recipe against the frozen body
            fold = fold_ids(rows, args.folds)
            labels, groups = rows.labels[scored], rows.groups[scored]
            for recipe in [r for r in args.recipes if r in done]:
                sp = spread(done[recipe].probs, done["frozen"].probs, labels, groups, fold)
                spreads.append(spread_row(name, recipe, sp))
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    head = (
        f"Whole-article cross-validation, {dt.date.today().isoformat()}, "
        f"{machine()} (shared 2-core CPU), one seed; command:\n\n    {command}\n"
    )
    text = head + "\n" + "\n".join(lines) + "\n"
    settings = [
        f"- `{r}`: " + " ".join(f"`{o}`" for o in {**TUNED, **TOP}[r])
        for r in args.recipes
        if r in TUNED or r in TOP
    ]
    if "ensemble-top" in args.recipes:
        settings.append("- `ensemble-top`: mean probabilities of " + ", ".join(ENSEMBLE_TOP))
    if "config" in args.recipes:
        settings.append("- `config`: each block's config file as it is (no overrides)")
    if settings:
        text += "\nConfig overrides of the tuned recipes"
        text += " (stance/evaluation/cvtable.py, cvtop.py):\n\n"
        text += "\n".join(settings) + "\n"
    if len(spreads) > 2:
        text += (
            f"\nAgainst the frozen body on the same folds ({args.folds or 'one per article'}"
            "; 2,000 paired resamples of whole articles, seed 0):\n\n" + "\n".join(spreads) + "\n"
        )
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
