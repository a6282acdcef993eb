"""Training examples/s of `stance train` against `transformers.Trainer`; prints a table.

python scripts/bench_train.py [--steps 30] [--rounds 3] [--quality] [--epochs-only] [--profile]
    [--collate] [--json out.json] [--markdown docs/snippets/bench-train.md]
"""

import argparse
import json
import logging
import sys
from pathlib import Path

# The repository's benchmarks package, not pysbd's top-level `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_json  # noqa: E402
from benchmarks.train import (  # noqa: E402
    collate_times,
    epoch_scaling,
    profile,
    throughput,
    time_to_quality,
)
from stance.util.snippets import stdout_snippet  # noqa: E402


def main(args: argparse.Namespace) -> None:
    if args.profile:
        print(profile(batch_size=args.batch_size))
        return
    if args.collate:
        result = {"collate": collate_times()}
        print(result["collate"]["table"])
        write_json(args.json, result)
        return
    if args.epochs_only:
        result = {"epochs": epoch_scaling(batch_size=args.batch_size)}
        print(result["epochs"]["table"])
        write_json(args.json, result)
        return
    result = throughput(
        args.steps, args.batch_size, args.rounds, max_length=args.max_length, extra=args.overrides
    )
    print(json.dumps(result["machine"]))
    print(
        f"float32 matmul peak measured: {result['matmul_gflops']:.0f} GFLOP/s; "
        f"mean pair length {result['mean_tokens']:.1f} tokens"
    )
    print(result["table"])
    if args.quality:
        result["quality"] = time_to_quality()
        print(result["quality"]["table"])
    write_json(args.json, result)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--quality", action="store_true", help="also train both to the end")
    p.add_argument("--epochs-only", action="store_true", help="only seconds/epoch vs rows")
    p.add_argument("--profile", action="store_true", help="torch.profiler top ops of our loop")
    p.add_argument("--collate", action="store_true", help="only ms to pad one batch, 3 ways")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    p.add_argument("overrides", nargs="*", help="config overrides for stance's loop")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    title = (
        "Padding one training batch: ms per batch, three ways"
        if args.collate
        else "`stance train`'s loop against `transformers.Trainer`"
    )
    with stdout_snippet(args.markdown, title):
        main(args)
