"""`stance predict`'s options, defaults and exit codes: importable without torch.

The CLI builds its parser from here, so `stance --help` and argument errors answer at once;
the engine (torch, transformers) is imported only when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import StanceError
from ..inference import DEFAULT_BATCH_SIZE
from ..inference.records import DEFAULT_CHUNK_CHARS

DEFAULT_MAX_ARTICLE_BYTES = 5_000_000
OUTPUT_FORMATS = (".jsonl", ".csv")
STDIN = "-"
STDOUT = "-"
# Exit codes of `stance predict` (2 is any usage, config or model error, from the CLI).
EXIT_PARTIAL = 1  # some inputs failed; the others are in the output
EXIT_NOTHING_READ = 3  # every input failed; nothing was written


def output_format(path: str | Path) -> str:
    """`.jsonl` or `.csv` from the output's extension (`-`: JSON Lines on stdout)."""
    if str(path) == STDOUT:
        return ".jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise StanceError(f"{path}: output must end in .jsonl or .csv, not {suffix or '(none)'}")
    return suffix


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


INPUTS_HELP = (
    "article .txt files, saved .html/.htm pages (main text only), directories of them, .jsonl "
    'files ({"id", "text"} a line), or - for standard input'
)
EXIT_CODES_HELP = (
    "exit codes: 0 every input was used; 1 some inputs failed (each named in the log, the "
    "others are in the output); 2 usage, config or model error (nothing written); 3 every "
    "input failed, nothing could be read (nothing written)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `stance predict`."""
    p.epilog = EXIT_CODES_HELP
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=INPUTS_HELP,
    )
    p.add_argument("--model", required=True, help="run directory (save_pretrained + config.yaml)")
    p.add_argument("--claim", help="claim to test each sentence against (default: the model's)")
    p.add_argument(
        "--output",
        "-o",
        required=True,
        help="OUT.jsonl or OUT.csv, one row a sentence; - for JSON Lines on stdout "
        "(logs stay on stderr)",
    )
    p.add_argument("--summary", help="per-article summary .json (and a .png chart beside it)")
    _add_run_arguments(p)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """How `stance predict` runs: batches, device, precision, lengths, resuming, chunks."""
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"sentences per forward pass (default: {DEFAULT_BATCH_SIZE}); larger is faster "
        "until memory runs out",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where the model runs (default: auto, a GPU when there is one, else the CPU)",
    )
    p.add_argument(
        "--quantize",
        default="none",
        choices=["none", "int8"],
        help="int8: the linear layers in int8, per-row activation scales (CPU, about 2x float32)",
    )
    p.add_argument(
        "--max-length",
        type=_positive_int,
        default=None,
        help="tokens per (claim, sentence) pair; longer is truncated and counted "
        "(default: the length the model was trained with, from its config.json)",
    )
    p.add_argument(
        "--max-article-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_ARTICLE_BYTES,
        help="larger articles are refused (that input fails, the others go on)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from OUT.partial"
    )
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--no-relevance",
        action="store_true",
        help="count every sentence: do not judge whether it bears on the claim (saves the "
        "MiniLM embedding pass; on_claim is then null)",
    )
    p.add_argument(
        "--chunk-chars",
        type=_positive_int,
        default=DEFAULT_CHUNK_CHARS,
        help="characters of text per chunk (the unit of crash recovery)",
    )
