"""Whole-process speed of `stance predict` with a few-shot (sentence) model, against what a
user would write by hand: sentence-transformers' `encode` (batch 32) + the linear head.

Every row is a fresh process timed end to end (imports, model load, segmenting, output), on
the same corpus: the seed articles repeated (distinct ids) to about `n` sentences. Rows
alternate within each round; the best of the rounds is reported, with ratios to the
hand-written baseline of the same run. Label agreement of int8 with float32 comes from the
outputs themselves, and in-process on the seed sentences, written rows and (with --unseen)
unseen FNC-1 news sentences.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import ROOT, fnc1_bodies, machine, table

BASELINE = "sentence-transformers encode + head"
# Row name -> `stance predict` flags (None: the hand-written baseline).
ROWS: dict[str, list[str] | None] = {
    BASELINE: None,
    "stance predict fp32": [],
    "stance predict fp32 --no-relevance": ["--no-relevance"],
    "stance predict int8": ["--quantize", "int8"],
    "stance predict int8 --no-relevance": ["--quantize", "int8", "--no-relevance"],
}


def write_corpus(path: Path, n: int) -> int:
    """The seed articles repeated to >= n sentences, one JSON line each; the sentence count."""
    from stance.data.segment import split_sentences

    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))]
    counts = [len(split_sentences(t)) for t in texts]
    total, copy = 0, 0
    with path.open("w", encoding="utf-8") as f:
        while total < n:
            for i, (text, count) in enumerate(zip(texts, counts, strict=True)):
                f.write(json.dumps({"id": f"seed{i}-copy{copy}", "text": text}) + "\n")
                total += count
            copy += 1
    return total


def write_unseen_corpus(path: Path, n: int, bodies_csv: str) -> int:
    """FNC-1 bodies (news the model never saw, few repeated sentences) as articles, one JSON
    line each, to >= n sentences; the sentence count. Times the network, not the repeats."""
    from stance.data.segment import split_sentences

    total = 0
    with path.open("w", encoding="utf-8") as out:
        for body_id, body in fnc1_bodies(bodies_csv):
            out.write(json.dumps({"id": f"fnc1-{body_id}", "text": body}) + "\n")
            total += len(split_sentences(body))
            if total >= n:
                break
    return total


def baseline(model: str, corpus: str, out: str) -> None:
    """The hand-written path (run in its own process): split, encode, head, labels out."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    from stance.data.segment import split_sentences
    from stance.labels import LABELS

    body = SentenceTransformer(str(Path(model) / "body"), device="cpu", local_files_only=True)
    head = load_file(str(Path(model) / "head.safetensors"))
    lines = Path(corpus).read_text(encoding="utf-8").splitlines()
    sentences = [s for line in lines for s in split_sentences(json.loads(line)["text"])]
    with torch.inference_mode():
        emb = body.encode(sentences, batch_size=32, convert_to_tensor=True)
        emb = torch.nn.functional.normalize(emb, dim=-1)
        logits = emb @ head["weight"].T + head["bias"]
    labels = [LABELS[i] for i in logits.argmax(-1).tolist()]
    Path(out).write_text("\n".join(json.dumps({"label": x}) for x in labels) + "\n")


def _command(model: str, corpus: Path, out: Path, flags: list[str] | None) -> list[str]:
    if flags is None:
        return [sys.executable, "-m", "benchmarks.fewshot", model, str(corpus), str(out)]
    return [sys.executable, "-m", "stance.cli", "predict", "--model", model, str(corpus)] + [
        "--output",
        str(out),
        *flags,
    ]


def _labels(path: Path) -> list[str]:
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return [r["label"] for r in rows if "label" in r]


def timings(
    model: str, n: int, rounds: int, tmp: Path, unseen: str | None = None
) -> tuple[int, dict, dict]:
    """(sentences, best wall seconds per row, labels per row) over alternating rounds; the
    corpus is the seed articles repeated, or with `unseen` (a bodies CSV) FNC-1 bodies."""
    corpus = tmp / "corpus.jsonl"
    sentences = write_unseen_corpus(corpus, n, unseen) if unseen else write_corpus(corpus, n)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    best: dict[str, float] = {}
    labels: dict[str, list[str]] = {}
    for _ in range(rounds):
        for name, flags in ROWS.items():
            out = tmp / f"{abs(hash(name))}.jsonl"
            start = time.perf_counter()
            subprocess.run(_command(model, corpus, out, flags), cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
            labels[name] = _labels(out)
    return sentences, best, labels


def fnc1_sentences(bodies_csv: str, n: int) -> list[str]:
    """Sentences of FNC-1 bodies (news the model never saw), up to `n`, 6 per body at most."""
    from stance.data.segment import split_sentences

    out: list[str] = []
    for _, body in fnc1_bodies(bodies_csv):
        out += split_sentences(body)[:6]
        if len(out) >= n:
            break
    return out[:n]


def agreement_sets(unseen: str | None, unseen_n: int) -> dict[str, list[str]]:
    sets = {}
    for name in ("withdrawal", "withdrawal-variants", "withdrawal-written"):
        path = ROOT / "data" / f"{name}.jsonl"
        if path.is_file():
            rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
            sets[f"data/{name}.jsonl"] = [r["text"] for r in rows if not r.get("skip")]
    if unseen:
        sets["unseen FNC-1 sentences"] = fnc1_sentences(unseen, unseen_n)
    return sets


def agreement(model: str, sets: dict[str, list[str]]) -> list[list[object]]:
    """In process: the share of int8 labels equal to float32's, per set of sentences."""
    from stance.inference.engine import StancePredictor

    fp32, int8 = StancePredictor(model), StancePredictor(model, quantize="int8")
    rows: list[list[object]] = []
    for name, texts in sets.items():
        a, b = fp32.classify(texts).argmax(-1), int8.classify(texts).argmax(-1)
        rows.append([f"{name} ({len(texts)})", f"{np.mean(a == b):.1%}"])
    return rows


def report(
    model: str, n: int, rounds: int, unseen: str | None, unseen_n: int, corpus: str = "seeds"
) -> str:
    """The Markdown tables: speed of every row, then int8's agreement with float32.
    `corpus`: 'seeds' (the seed articles repeated) or 'unseen' (FNC-1 bodies from `unseen`)."""
    from stance.inference.int8 import int8_kernel

    if corpus == "unseen" and not unseen:
        raise SystemExit("--corpus unseen needs --unseen BODIES_CSV")
    bodies = unseen if corpus == "unseen" else None
    with tempfile.TemporaryDirectory() as tmp:
        sentences, best, labels = timings(model, n, rounds, Path(tmp), bodies)
    base = best[BASELINE]
    speed = [
        [name, f"{t:.1f}", f"{sentences / t:.1f}", f"{base / t:.2f}x"] for name, t in best.items()
    ]
    agree = []
    for suffix in ("", " --no-relevance"):
        fp, q = f"stance predict fp32{suffix}", f"stance predict int8{suffix}"
        same = np.mean([x == y for x, y in zip(labels[fp], labels[q], strict=True)])
        agree.append([f"`{q}` output vs `{fp}` ({len(labels[fp])})", f"{same:.1%}"])
    agree += agreement(model, agreement_sets(unseen, unseen_n))
    m = machine()
    what = "FNC-1 bodies, unseen news" if bodies else "seed articles repeated"
    head = (
        f"{m['date']}, {m['cpu']}, {m['cores']} cores, torch {m['torch']}, commit {m['commit']}; "
        f"int8 kernel: {int8_kernel()}; {sentences} sentences ({what}), load average "
        f"{os.getloadavg()[0]:.1f} at the end, "
        f"best of {rounds} alternating rounds, each row a whole process"
    )
    return "\n\n".join(
        [
            head,
            table(["row", "wall s", "sentences/s", "x hand-written"], speed),
            table(["int8 labels equal to float32's", "share"], agree),
        ]
    )


if __name__ == "__main__":  # the baseline's own process: MODEL CORPUS OUT
    baseline(*sys.argv[1:4])
