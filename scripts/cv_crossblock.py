"""Cross-block test of the written hard cases (stance/evaluation/crossblock.py, issue 22).

python scripts/cv_crossblock.py [--config configs/withdrawal.yaml]
    [--blocks data/withdrawal-written.jsonl data/withdrawal-targeted.jsonl]
    [--recipes frozen lpft-top-lr5e-5] [--markdown docs/snippets/cv-crossblock.md]

Each block is scored after training on the config's other files (base) and on base plus the
other block: per hard topic, rows right and rows wrongly called `doubts`. Every number comes
from this run (or the on-disk caches of embeddings and lower-layer states).
"""

import argparse
import logging
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine  # noqa: E402
from stance.evaluation.crossblock import cross_block, markdown  # noqa: E402
from stance.evaluation.cvfolds import Setting  # noqa: E402
from stance.evaluation.cvtop import TOP  # noqa: E402
from stance.util.snippets import stdout_snippet  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="configs/withdrawal.yaml")
    p.add_argument(
        "--blocks",
        nargs=2,
        default=["data/withdrawal-written.jsonl", "data/withdrawal-targeted.jsonl"],
    )
    p.add_argument("--recipes", nargs="+", default=["frozen", "lpft-top-lr5e-5"],
                   choices=["frozen", *TOP])  # fmt: skip
    p.add_argument("--set", nargs="*", default=[], help="config overrides")
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/stance/cvtable")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    setting = Setting(args.config, args.set)
    scores = cross_block(setting, tuple(args.blocks), args.recipes, args.cache_dir)
    m = machine()
    with stdout_snippet(args.markdown, "Cross-block test of the written hard cases"):
        print(f"{m['date']}, {m['cpu']}, torch {m['torch']}, commit {m['commit']}; command:")
        print()
        print("    python " + " ".join(shlex.quote(a) for a in sys.argv))
        print()
        print(markdown(scores))
