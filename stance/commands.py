"""What each `stance` subcommand does, given its parsed arguments (the parser: stance.cli).

Every command imports its heavy modules (torch, the model) when it runs, after the cheap
checks (config, paths) have answered.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .errors import StanceError

logger = logging.getLogger("stance")


def cmd_segment(args: argparse.Namespace) -> int:
    """Sentences of every input, read as `stance predict` reads them (one reader), with its
    exit codes: 1 when some inputs failed, 3 and no output file when all of them did."""
    from .data.segment import sentence_records
    from .predict.inputs import ArticleStream
    from .predict.options import DEFAULT_MAX_ARTICLE_BYTES, EXIT_NOTHING_READ, EXIT_PARTIAL
    from .util.atomic import atomic_write_lines

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
    from .kinds.registry import get_kind
    from .train import check_trainable, run_training

    check_trainable(cfg)
    metrics = run_training(cfg, resume=args.resume)
    print(f"run directory: {cfg.run_dir}")
    summary = get_kind(cfg.model.kind).train_summary(cfg, metrics)
    if summary:
        print(summary)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.scoring import evaluate_model

    result = evaluate_model(
        args.model,
        args.data,
        claim=args.claim,
        batch_size=args.batch_size,
        max_length=args.max_length,
        quantize=args.quantize,
        claim_checks=args.claim_check,
    )
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        from .metrics import format_metrics

        print(f"{args.model} on {args.data} ({result.precision})")
        print(format_metrics(result.metrics))
        if result.check is not None:
            from .evaluation.claimcheck import format_check

            print(format_check(result.check))
    if args.markdown:
        from .evaluation.scoring import markdown_evaluations
        from .util.snippets import write_snippet

        title = f"`stance evaluate`: {args.model} on {args.data}"
        write_snippet(args.markdown, title, markdown_evaluations([result]))
    return 1 if result.check is not None and not result.check.passed else 0


def cmd_cv(args: argparse.Namespace) -> int:
    from .config import load_config

    if args.resume and not args.json:
        raise StanceError("--resume continues the report in --json FILE; give --json")
    cfg = load_config(args.config, args.overrides)
    from .evaluation import cv_resume
    from .evaluation.crossval import cross_validate, format_report

    key = cv_resume.resume_key(cfg, args.seeds)
    done = cv_resume.finished_runs(args.json, key) if args.resume else []
    save = (lambda r: cv_resume.write_partial(args.json, r, key)) if args.json else None
    report = cross_validate(cfg, args.seeds, done=done, on_run=save)
    print(format_report(report))
    if args.json:
        cv_resume.write_partial(args.json, report, key)
    if args.markdown:
        from .evaluation.crossval import markdown_report
        from .util.snippets import write_snippet

        title = f"Leave-one-article-out cross-validation: {report['name']}, {args.seeds} seed(s)"
        write_snippet(args.markdown, title, markdown_report(report))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.config, args.overrides)
    from .data.training_rows import split_training_data
    from .labels import LABELS
    from .util.atomic import atomic_write_lines

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
    from .data.importers import import_emergent, import_fnc1

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
    from .kinds.pypi import mpnet_path

    print(mpnet_path())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict.options import output_format

    # Usage errors first: they should not wait seconds for torch to import.
    from .preflight import check_model_dir, nothing_readable

    output_format(args.output)
    check_model_dir(args.model, args.claim)
    if nothing_readable(args.inputs):
        from .predict.options import EXIT_NOTHING_READ

        return EXIT_NOTHING_READ
    from .predict import run as predict

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
