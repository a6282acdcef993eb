"""Per-linear timings behind `--quantize int8` on this CPU (see benchmarks/int8.py).

python scripts/bench_int8.py [--rows 1280] [--threads 1] [--repeat 10] [--rounds 5]
    [--markdown docs/snippets/bench-int8.md]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, table  # noqa: E402
from benchmarks.int8 import describe, run  # noqa: E402
from stance.util.snippets import stdout_snippet  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1280, help="token rows per call (32 x 40)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    headers, rows = run(args.rows, args.threads, args.repeat, args.rounds)
    m = machine()
    threads = f"{args.threads} thread(s)"
    with stdout_snippet(args.markdown, "int8 and float32 linears on this CPU"):
        print(f"{m['date']}, {m['cpu']}, torch {m['torch']}, {threads}, commit {m['commit']}")
        print(describe())
        print()
        print(table(headers, rows))
