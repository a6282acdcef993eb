"""Speed and int8 agreement of a few-shot (sentence) run directory; prints one table.

    python scripts/bench_fewshot.py --model models/withdrawal [--n 1024] [--rounds 3]
        [--markdown docs/snippets/bench-fewshot.md]

Rows, on the same sentences (the seed sentences and written variants, repeated to --n), in
one process, alternating within each round (medians reported, ratios to the first row):
- `sentence-transformers encode + head`: the library's own path (SentenceTransformer.encode,
  then the linear head), what a user would write by hand;
- `stance fp32` and `stance int8`: StancePredictor.classify, the engine `stance predict` uses
  (length-sorted batches; int8 = per-row activation scales, per-channel weights).
Agreement: labels of int8 against fp32 on the seed sentences, the written variants and (with
--unseen ../shared/data/fnc1/train_bodies.csv) unseen news sentences, for the engine's int8
policy (feed-forward linears) and for every linear quantised.
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

from stance.snippets import stdout_snippet

ROOT = Path(__file__).resolve().parents[1]


def sentences(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/withdrawal")
    p.add_argument("--n", type=int, default=1024, help="sentences per measurement")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--unseen", metavar="BODIES_CSV", help="also FNC-1 bodies (train_bodies.csv)")
    p.add_argument("--unseen-n", type=int, default=300, help="sentences from --unseen")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    with stdout_snippet(args.markdown, f"Few-shot engine speed and int8 agreement: {args.model}"):
        run(args)


def run(args: argparse.Namespace) -> None:
    from stance.engine import StancePredictor
    from stance.fewshot_run import load_sentence_model

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
    sets = [("seed sentences", seeds), ("written variants", variants)]
    if args.unseen:
        sets.append(("unseen FNC-1 sentences", fnc1_sentences(args.unseen, args.unseen_n)))
    int8_all = all_linears_int8(args.model, args.batch_size)
    print(f"{'int8 label agreement with fp32':<40}{'engine (feed-forward)':>22}{'all linears':>13}")
    for name, rows in sets:
        a = fp32.classify(rows).argmax(-1)
        ours, every = int8.classify(rows).argmax(-1), int8_all.classify(rows).argmax(-1)
        label = f"{name} ({len(rows)})"
        print(f"{label:<40}{(a == ours).mean():>22.1%}{(a == every).mean():>13.1%}")


def fnc1_sentences(bodies_csv: str, n: int) -> list[str]:
    """The first sentences of FNC-1 bodies (news the model never saw), up to `n`."""
    import csv

    from stance.segment import split_sentences

    csv.field_size_limit(1 << 30)
    out: list[str] = []
    with open(bodies_csv, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            out += split_sentences(row["articleBody"])[:6]
            if len(out) >= n:
                break
    return out[:n]


def all_linears_int8(model: str, batch_size: int):
    """The int8 predictor with every linear quantised (the policy the engine does not use)."""
    from stance import engine
    from stance.engine import StancePredictor

    kept = engine.ffn_layer
    engine.ffn_layer = lambda name: True
    try:
        return StancePredictor(model, batch_size=batch_size, quantize="int8")
    finally:
        engine.ffn_layer = kept


if __name__ == "__main__":
    main()
