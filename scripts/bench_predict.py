"""Sentences/s of `stance predict`'s engine against `transformers.pipeline`; prints tables.

python scripts/bench_predict.py [--model models/withdrawal] [--n 2048] [--rounds 3]
    [--scaling] [--device cpu|cuda] [--json out.json]
    [--engines pipeline,stance-fp32,stance-int8,torchao-int8,onnxruntime-fp32,...]

The alternatives (torchao-int8, onnxruntime-fp32, onnxruntime-int8, compile-fp32) are opt-in;
ONNX Runtime needs `pip install -e .[bench]`.
"""

import argparse
import json
import logging

from stance.benchmarks.common import write_json
from stance.benchmarks.predict import ENGINES, scaling, throughput

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
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    engines = tuple(args.engines.split(","))
    result = throughput(args.model, args.n, args.batch_size, args.rounds, args.device, engines)
    print(json.dumps(result["machine"]))
    print(
        f"float32 matmul peak measured: {result['matmul_gflops']:.0f} GFLOP/s; "
        f"{result['mean_tokens']:.1f} tokens and "
        f"{result['flops_per_pair'] / 1e9:.2f} GFLOP per pair"
    )
    print(result["table"])
    if args.scaling:
        result["scaling"] = scaling(args.model)
        print(result["scaling"]["table"])
    write_json(args.json, result)
