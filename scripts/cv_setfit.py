"""The `setfit` library in the CV table of docs/design/default-model.md: leave-one-article-out.

    pip install setfit==1.2.0   # optional: `pip install -e .[setfit]`
    python scripts/cv_setfit.py [--base minilm|mpnet] [--seeds 3] [--iterations 20]
        [--variants]

Same folds, seeds and scoring as `stance cv` (macro-F1 per held-out article, pooled macro-F1,
majority baseline). setfit's own defaults otherwise (contrastive pairs with CosineSimilarityLoss,
then a scikit-learn logistic regression head, which setfit pickles when saved: this script only
scores it, it never saves or loads a pickle).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time

from stance.data.statements import leave_one_group_out, load_statements
from stance.evaluation.crossval import fold_run, format_report, majority_baseline, summarise


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", choices=["minilm", "mpnet"], default="minilm")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=20, help="setfit num_iterations")
    p.add_argument("--variants", action="store_true", help="train on the written variants too")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    try:  # optional: --help works without it
        from setfit import SetFitModel, Trainer, TrainingArguments
    except ImportError:
        raise SystemExit("cv_setfit.py needs setfit: pip install -e .[setfit]") from None

    from stance.kinds.backbones import minilm_path
    from stance.kinds.pypi import mpnet_path

    logging.basicConfig(level=logging.WARNING)
    path = str(minilm_path() if args.base == "minilm" else mpnet_path())
    extra = load_statements("data/withdrawal-variants.jsonl") if args.variants else None
    runs, baselines = [], []
    for held_out, train_ds, test_ds in leave_one_group_out(
        load_statements("data/withdrawal.jsonl"), extra
    ):
        base = majority_baseline(list(train_ds["label"]), list(test_ds["label"]))
        baselines.append({"fold": held_out, **{k: base[k] for k in ("macro_f1", "accuracy")}})
        for seed in range(42, 42 + args.seeds):
            start, tmp = time.perf_counter(), tempfile.mkdtemp(prefix="cv-setfit-")
            model = SetFitModel.from_pretrained(path, local_files_only=True)
            trainer = Trainer(
                model=model,
                args=TrainingArguments(
                    output_dir=tmp,  # its checkpoints: never in the working tree
                    num_iterations=args.iterations,
                    num_epochs=1,
                    batch_size=16,
                    seed=seed,
                ),
                train_dataset=train_ds.select_columns(["text", "label"]),
            )
            trainer.train()
            preds = [int(y) for y in model.predict(list(test_ds["text"]))]
            gold = list(test_ds["label"])
            runs.append(fold_run(held_out, seed, preds, gold, time.perf_counter() - start))
            shutil.rmtree(tmp, ignore_errors=True)
    name = f"setfit {args.base} ({args.iterations} iterations{', variants' if extra else ''})"
    report = {"name": name, "runs": runs, "baseline": baselines}
    report["summary"] = summarise(runs, baselines)
    print(format_report(report))
    if args.markdown:
        from stance.evaluation.crossval import markdown_report
        from stance.util.snippets import write_snippet

        title = f"Leave-one-article-out cross-validation: {name}, {args.seeds} seed(s)"
        write_snippet(args.markdown, title, markdown_report(report))


if __name__ == "__main__":
    main()
