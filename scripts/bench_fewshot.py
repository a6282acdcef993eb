"""Whole-process `stance predict` (float32 and --quantize int8, with and without the relevance
filter) against sentence-transformers' encode (batch 32) + the head; prints Markdown tables.

    python scripts/bench_fewshot.py [--model models/withdrawal] [--n 3000] [--rounds 2]
        [--unseen ../shared/data/fnc1/train_bodies.csv] [--unseen-n 2000]
        [--corpus seeds|unseen] [--markdown docs/snippets/bench-fewshot.md]

--corpus seeds (the issue's corpus) repeats the seed articles, so repeated sentences are run
once by `stance predict` and not by the hand-written path; --corpus unseen times FNC-1 bodies
(from --unseen), news with few repeats: the network's own speed.

STANCE_INT8_KERNEL=int_mm|fbgemm|none forces the int8 kernel (stance.inference.kernels.int8_kernel).
"""

import argparse
import sys
from pathlib import Path

# The repository's benchmarks package, not pysbd's top-level `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fewshot import report  # noqa: E402
from stance.util.snippets import stdout_snippet  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/withdrawal")
    p.add_argument("--n", type=int, default=3000, help="sentences in the corpus (about)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--unseen", metavar="BODIES_CSV", help="FNC-1 train_bodies.csv")
    p.add_argument("--unseen-n", type=int, default=2000, help="sentences from --unseen")
    p.add_argument("--corpus", choices=("seeds", "unseen"), default="seeds")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    with stdout_snippet(args.markdown, f"Few-shot `stance predict` speed: {args.model}"):
        print(report(args.model, args.n, args.rounds, args.unseen, args.unseen_n, args.corpus))
