"""Speed and int8 agreement of a few-shot (sentence) run directory; prints one table.

    python scripts/bench_fewshot.py --model models/withdrawal [--n 1024] [--rounds 3]

Rows, on the same sentences (the seed sentences and written variants, repeated to --n), in
one process, alternating within each round (medians reported, ratios to the first row):
- `sentence-transformers encode + head`: the library's own path (SentenceTransformer.encode,
  then the linear head), what a user would write by hand;
- `stance fp32` and `stance int8`: StancePredictor.classify, the engine `stance predict` uses
  (length-sorted batches; int8 = per-row activation scales, per-channel weights).
Agreement: labels of int8 against fp32 on the seed sentences, and on the written variants.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def sentences(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    from stance.engine import StancePredictor
    from stance.fewshot_run import load_sentence_model

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/withdrawal")
    p.add_argument("--n", type=int, default=1024, help="sentences per measurement")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    seeds = sentences(ROOT / "data" / "withdrawal.jsonl")
    variants = sentences(ROOT / "data" / "withdrawal-variants.jsonl")
    texts = ((seeds + variants) * (args.n // (len(seeds) + len(variants)) + 1))[: args.n]
    model = load_sentence_model(args.model)
    fp32 = StancePredictor(args.model, batch_size=args.batch_size)
    int8 = StancePredictor(args.model, batch_size=args.batch_size, quantize="int8")

    @torch.inference_mode()
    def library() -> np.ndarray:
        emb = model.body.encode(texts, batch_size=args.batch_size, convert_to_tensor=True)
        return torch.softmax(model.head(torch.nn.functional.normalize(emb, dim=-1)), -1).numpy()

    engines = {
        "sentence-transformers encode + head": library,
        "stance fp32": lambda: fp32.classify(texts),
        "stance int8": lambda: int8.classify(texts),
    }
    for run in engines.values():
        run()  # warm-up: every batch shape met once
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name, run in engines.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times[next(iter(engines))])
    print(
        f"{args.model}: {args.n} sentences, batch {args.batch_size}, {args.rounds} rounds, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'engine':<38}{'sentences/s':>12}{'x library':>11}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name:<38}{args.n / t:>12.1f}{base / t:>11.2f}")
    for name, rows in (("seed sentences", seeds), ("written variants", variants)):
        a = fp32.classify(rows).argmax(-1)
        b = int8.classify(rows).argmax(-1)
        print(f"int8 vs fp32 label agreement, {name}: {(a == b).mean():.1%} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
