"""Learning curves of `stance annotate`'s head: uncertainty against random order.

python scripts/bench_annotate.py [--seeds 20] [--retrain-every 5] [--c 1.0]
    [--plot docs/annotate_learning_curve.png] [--json out.json]
    [--markdown docs/snippets/bench-annotate.md]
"""

import argparse
import logging
import sys
from pathlib import Path

# The repository's benchmarks package, not pysbd's top-level `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.annotate import format_table, learning_curves, plot  # noqa: E402
from benchmarks.common import machine, write_json  # noqa: E402
from stance.annotate.learner import MiniLMEmbedder  # noqa: E402
from stance.util.snippets import stdout_snippet  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--retrain-every", type=int, default=5)
    p.add_argument("--c", type=float, default=1.0, help="inverse regularisation of the head")
    p.add_argument("--plot", help="write the learning curve here (.png)")
    p.add_argument("--json", help="write every run here")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = learning_curves(
        MiniLMEmbedder(), seeds=args.seeds, retrain_every=args.retrain_every, c=args.c
    )
    result["machine"] = machine()
    with stdout_snippet(args.markdown, "Active learning in `stance annotate`: learning curves"):
        print(
            f"leave-one-article-out macro-F1 of the annotate head, mean ± std over 3 folds x "
            f"{args.seeds} seeds (C={args.c}, retrain every {args.retrain_every})"
        )
        print()
        print(format_table(result))
    if args.plot:
        plot(result, args.plot)
        print(f"learning curve -> {args.plot}")
    write_json(args.json, result)
