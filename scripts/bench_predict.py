"""Sentences/s of `stance predict`'s engine against `transformers.pipeline`; prints tables.

python scripts/bench_predict.py [--model models/withdrawal] [--n 2048] [--rounds 3]
    [--scaling] [--profile] [--agreement ../shared/data/fnc1/train_bodies.csv]
    [--device cpu|cuda] [--json out.json] [--markdown docs/snippets/bench-predict.md]
    [--engines pipeline,stance-fp32,stance-int8,torchao-int8,onnxruntime-fp32,...]

The alternatives (torchao-int8, onnxruntime-fp32, onnxruntime-int8, compile-fp32) are opt-in;
ONNX Runtime needs `pip install -e .[bench]`.
"""

import argparse
import logging
import sys
from pathlib import Path

# The repository's benchmarks package, not pysbd's top-level `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_json  # noqa: E402
from benchmarks.predict import ENGINES, agreement, profile, scaling, throughput  # noqa: E402
from stance.util.snippets import stdout_snippet  # noqa: E402


def main(args: argparse.Namespace) -> None:
    if args.agreement:
        print(agreement(args.model, args.agreement))
    elif args.profile:
        for quantize in ("none", "int8"):
            print(f"stance engine, quantize={quantize}:\n{profile(args.model, quantize=quantize)}")
    else:
        result = {}
        if not args.scaling_only:
            engines = tuple(args.engines.split(","))
            args_ = (args.model, args.n, args.batch_size, args.rounds, args.device)
            result = throughput(*args_, engines)
            print(result["report"])
        if args.scaling or args.scaling_only:
            result["scaling"] = scaling(args.model)
            print(result["scaling"]["table"])
        write_json(args.json, result)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/withdrawal")
    p.add_argument("--n", type=int, default=2048, help="pairs per measurement")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--scaling", action="store_true", help="also 1k/10k/100k sentences")
    p.add_argument("--scaling-only", action="store_true", help="only the scaling table")
    p.add_argument("--profile", action="store_true", help="torch.profiler top ops, fp32 and int8")
    p.add_argument("--agreement", metavar="BODIES_CSV", help="int8 agreement on FNC-1 bodies")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with stdout_snippet(args.markdown, f"`stance predict`'s engine: {args.model}"):
        main(args)
