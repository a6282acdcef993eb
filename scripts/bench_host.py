"""Text -> padded id batches (stance's host pipeline) against the bare Rust tokenizer.

python scripts/bench_host.py [--n 16384] [--rounds 5] [--threads 1 2] [--batch-size 64]
    [--bucket 8] [--kinds sentences pairs] [--bodies ../shared/data/fnc1/train_bodies.csv]
    [--json out.json]

Prints a table, then as its last line the row with the lowest ratio:
`host pipeline X sentences/s, bare tokenizer Y sentences/s, ratio R`.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

# The repository's benchmarks package, not pysbd's top-level `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, write_json  # noqa: E402
from benchmarks.host_pipeline import KINDS, as_json, last_line, run  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=16_384, help="sentences per pass")
    p.add_argument("--rounds", type=int, default=5, help="passes of each; the best is reported")
    p.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bucket", type=int, default=8, help="as on CUDA (1: pad to the longest)")
    p.add_argument(
        "--kinds", nargs="+", choices=("sentences", "pairs"), default=["sentences", "pairs"]
    )
    p.add_argument("--bodies", type=Path, help="FNC-1 bodies CSV: its sentences, not the seeds")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    args.threads = sorted(set(args.threads))
    args.kinds = [KINDS[0] if k == "sentences" else KINDS[1] for k in args.kinds]
    # Rust's pool is sized once, at its first use: as many threads as the most asked for.
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(args.threads)))
    logging.basicConfig(level=logging.WARNING)
    text, results = run(args)
    print(text)
    write_json(args.json, {"machine": machine(), "results": as_json(results)})
    print(last_line(results))
