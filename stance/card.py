"""The run directory's model card (README.md) and training plots."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import accelerate
import datasets
import torch
import transformers

from . import __version__
from .config import RunConfig
from .labels import LABELS


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    return {
        "stance": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def _metrics_table(m: dict) -> str:
    rows = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, c in m["per_class"].items():
        cells = [f"{c[k]:.3f}" for k in ("precision", "recall", "f1")]
        rows.append(f"| {name} | {' | '.join(cells)} | {c['support']} |")
    return "\n".join(rows)


def model_card(cfg: RunConfig, metrics: dict) -> str:
    data_rows = "\n".join(
        f"| `{s.path}` | {s.weight:g} | `{sha256(s.path)[:16]}` |" for s in cfg.data.train
    )
    if cfg.data.dev:
        data_rows += f"\n| `{cfg.data.dev}` (dev) | - | `{sha256(cfg.data.dev)[:16]}` |"
    dev = metrics.get("dev")
    if dev:
        results = (
            f"Dev set: {metrics['dev_rows']} statements from groups "
            f"{', '.join(metrics['dev_groups'][:10])}"
            f"{' ...' if len(metrics['dev_groups']) > 10 else ''}, never trained on.\n\n"
            f"- accuracy: **{dev['accuracy']:.3f}**\n- macro-F1: **{dev['macro_f1']:.3f}**\n\n"
            f"{_metrics_table(dev)}\n\n![confusion matrix](confusion_matrix.png)"
        )
    else:
        results = "No dev set was used."
    t = cfg.train
    hyper = ", ".join(
        f"{k}={getattr(t, k)}"
        for k in (
            "seed",
            "epochs",
            "batch_size",
            "grad_accum",
            "lr",
            "weight_decay",
            "warmup_ratio",
            "class_weights",
            "patience",
            "mixed_precision",
        )
    )
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [stance-detection, claim-conditioned]
---

# {cfg.name}

A claim-conditioned stance classifier: given the pair (claim, statement) it says whether the
statement **{LABELS[0]}**, **{LABELS[1]}** or is **{LABELS[2]}** toward the claim. Trained with the
`stance` package (`python scripts/train.py --config ...`; the resolved config is `config.yaml`).

- Base model: `{cfg.model.base}`
- Default claim: "{cfg.data.claim}"
- Labels (from `config.json` `id2label`): {", ".join(LABELS)}
- Max sequence length: {cfg.data.max_length} tokens (longer pairs are truncated)

## Use

```python
from transformers import pipeline
clf = pipeline("text-classification", model="{cfg.run_dir}")
clf({{"text": "{cfg.data.claim}", "text_pair": "Units are returning to their bases."}})
```

or `stance predict --model {cfg.run_dir} ARTICLES... --output predictions.jsonl`.

## Training data

| file | weight | sha256 (first 16) |
|---|---:|---|
{data_rows}

{metrics["train_rows"]} training statements; dev: {metrics["dev_rows"]}.
Hyper-parameters: {hyper}. Best dev step {metrics["best_step"]} of {metrics["steps"]};
{metrics["train_seconds"]} s of training.

## Results

{results}

![training curves](training_curves.png)

## Limitations

- The seed annotations are a few dozen sentences from three articles about one claim,
  labelled by one annotator (see data/README.md); dev metrics over so few rows move by
  several points from one seed to the next. Cross-validation (`stance cv`) is the better guide.
- English news prose only; sentence boundaries come from pysbd and can merge quotes.
- A stance label is not a fact check: "supports" means the statement backs the claim,
  not that the claim is true.

## Versions

{vers}
"""


def sentence_model_card(cfg: RunConfig, metrics: dict) -> str:
    """The model card of a few-shot sentence model (stance.fewshot)."""
    f, t = cfg.fewshot, cfg.train
    recipe = {
        "none": "frozen body; class-balanced logistic-regression head",
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
    dev = metrics.get("dev")
    results = (
        f"On `{cfg.data.dev}`: accuracy **{dev['accuracy']:.3f}**, macro-F1 "
        f"**{dev['macro_f1']:.3f}**.\n\n{_metrics_table(dev)}"
        if dev
        else "Trained on every labelled row; see `stance cv` (README) for held-out-article scores."
    )
    data_rows = "\n".join(
        f"| `{s.path}` | {s.weight:g} | `{sha256(s.path)[:16]}` |" for s in cfg.data.train
    )
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    return f"""---
library_name: sentence-transformers
pipeline_tag: text-classification
tags: [stance-detection, few-shot]
---

# {cfg.name}

A few-shot stance classifier for **one claim**: "{cfg.data.claim}"

It says whether a statement **{LABELS[0]}**, **{LABELS[1]}** or is **{LABELS[2]}** toward that
claim. A sentence-transformer body (`body/`, base `{cfg.model.base}`, mean pooling, L2
normalised) and a linear head (`head.safetensors`); labels, claim and max length
({cfg.data.max_length} tokens) are in `config.json`. Recipe: {recipe}.
Another claim needs another model (or the cross-encoder kind).

## Use

`stance predict --model {cfg.run_dir} ARTICLES... --output predictions.jsonl`, or
`stance.predict.StancePredictor("{cfg.run_dir}").predict(["An article. ..."])`.

## Training data

| file | weight | sha256 (first 16) |
|---|---:|---|
{data_rows}

{metrics["train_rows"]} statements; {metrics["train_seconds"]} s of training.

## Results

{results}

## Limitations

- A few dozen sentences from three articles, one annotator (data/README.md).
- English news prose only; a stance label is not a fact check.

## Versions

{vers}
"""


def history_figure(history: list[dict], best_step: int | None = None) -> Any:
    """The training-curves figure: train loss, dev macro-F1, and the step the run kept."""
    # The object API with an explicit Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["dev_macro_f1"]) for h in history if "dev_macro_f1" in h]
    fig = Figure(figsize=(6, 3.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    handles = []
    if losses:
        handles += ax.plot(*zip(*losses, strict=True), color="tab:blue", lw=1, label="train loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if evals:
        ax2 = ax.twinx()
        handles += ax2.plot(
            *zip(*evals, strict=True), "o-", color="tab:orange", label="dev macro-F1"
        )
        ax2.set_ylabel("dev macro-F1")
        ax2.set_ylim(0, 1)
        chosen = [f1 for step, f1 in evals if step == best_step]
        if chosen:  # the weights saved in the run directory are this step's
            handles += ax2.plot(
                [best_step], chosen, "*", color="black", markersize=13, zorder=5,
                label=f"chosen: step {best_step}",
            )  # fmt: skip
    if best_step:
        ax.axvline(best_step, color="black", linewidth=0.8, linestyle=":")
    # Above the axes, so it never hides a curve.
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.01), ncols=3,
              fontsize=8, frameon=False)  # fmt: skip
    return fig


def plot_history(history: list[dict], path: str | Path, best_step: int | None = None) -> None:
    history_figure(history, best_step).savefig(path)
