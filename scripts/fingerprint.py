"""Bit-for-bit fingerprint of what the package computes: for refactors that must change nothing.

Trains the tiny test models of both kinds (configs/tiny.yaml, configs/tiny-fewshot.yaml) with a
short seeded run, runs `stance predict` with each on the seed articles in float32 and
`--quantize int8`, does the same with a real model directory when one is given (default: the
trained default model, if present), and writes one JSON: the sha256 of every output file and
of every *.safetensors in the run directories. Run it before and after a change and diff:

    .venv/bin/python scripts/fingerprint.py --json /work/fingerprint-before.json
    ... change the code ...
    .venv/bin/python scripts/fingerprint.py --json /work/fingerprint-after.json
    .venv/bin/python scripts/fingerprint.py --compare /work/fingerprint-before.json \
        /work/fingerprint-after.json   # a table; exit 1 when a hash differs

Every step is a `stance` subprocess with one CPU thread (OMP/MKL too): the same code gives the
same bytes run after run. Paths are fixed (--work) because the summary names them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"cross-encoder": "configs/tiny.yaml", "sentence": "configs/tiny-fewshot.yaml"}
# Short: one epoch is enough to move every weight (the fewshot kind: LP-FT's loop too).
TRAIN_OVERRIDES = ["train.epochs=1", "train.seed=0"]
DEFAULT_REAL = Path("/work/main/models/withdrawal")
QUANTIZE = ("none", "int8")

logger = logging.getLogger("fingerprint")


def _env() -> dict[str, str]:
    """One thread everywhere: reductions split over threads may round differently."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = "1"
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONHASHSEED"] = "0"
    return env


def stance(*args: str) -> None:
    cmd = [sys.executable, "-m", "stance.cli", *args]
    logger.info("$ %s", " ".join(cmd[2:]))
    subprocess.run(cmd, cwd=ROOT, env=_env(), check=True, stdout=subprocess.DEVNULL)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hashes(folder: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob(pattern))}


def predict(model: Path, out: Path, seeds: list[str]) -> dict[str, dict[str, str]]:
    """`stance predict` per precision; the sha256 of each file it writes."""
    result = {}
    for quantize in QUANTIZE:
        folder = out / quantize
        folder.mkdir(parents=True)
        stance(
            "predict", *seeds, "--model", str(model), "--output", str(folder / "pred.jsonl"),
            "--summary", str(folder / "summary.json"), "--quantize", quantize,
            "--threads", "1", "--device", "cpu",
        )  # fmt: skip
        result[quantize] = hashes(folder, "*")
    return result


def fingerprint(work: Path, real: Path | None) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    seeds = [str(p) for p in sorted((ROOT / "seeds").glob("*.txt"))]
    report: dict = {"seeds": [Path(s).name for s in seeds], "kinds": {}}
    for kind, config in KINDS.items():
        run_dir = work / "runs" / kind
        stance("train", "--config", config, "--output-dir", str(run_dir), *TRAIN_OVERRIDES)
        report["kinds"][kind] = {
            "weights": hashes(run_dir, "*.safetensors"),
            "predict": predict(run_dir, work / "predict" / kind, seeds),
        }
    if real is not None:
        start = time.perf_counter()
        report["real"] = {
            "model": str(real),
            "weights": hashes(real, "*.safetensors"),
            "predict": predict(real, work / "predict" / "real", seeds),
        }
        logger.info("real model: %.0f s", time.perf_counter() - start)
    return report


def flatten(report: dict, prefix: str = "") -> dict[str, str]:
    """{"kinds/sentence/predict/int8/pred.jsonl": sha256, ...} of a fingerprint."""
    out: dict[str, str] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}/")
        elif isinstance(value, str) and len(value) == 64:
            out[f"{prefix}{key}"] = value
    return out


def compare(before: Path, after: Path) -> tuple[str, bool]:
    """A Markdown table of every hashed file, before and after; True when all are equal."""
    old, new = (flatten(json.loads(p.read_text())) for p in (before, after))
    rows = ["| file | sha256 before (first 16) | after | same |", "|---|---|---|---|"]
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name, "-"), new.get(name, "-")
        rows.append(f"| `{name}` | `{a[:16]}` | `{b[:16]}` | {'yes' if a == b else '**no**'} |")
    return "\n".join(rows) + "\n", old == new


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), type=Path,
                   help="compare two fingerprints instead (exit 1 when they differ)")  # fmt: skip
    p.add_argument("--markdown", type=Path, help="with --compare: write the table here too")
    p.add_argument("--json", help="where the fingerprint goes")
    p.add_argument("--work", default="/tmp/stance-fingerprint", help="scratch folder (emptied)")
    p.add_argument("--real", default=str(DEFAULT_REAL), help="a trained run directory ('' to skip)")
    args = p.parse_args()
    if args.compare:
        table, same = compare(*args.compare)
        print(table)
        if args.markdown:
            args.markdown.write_text(table)
        return 0 if same else 1
    if not args.json:
        p.error("--json is required (or --compare BEFORE AFTER)")
    real = Path(args.real) if args.real and Path(args.real).is_dir() else None
    report = fingerprint(Path(args.work), real)
    Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    logger.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
