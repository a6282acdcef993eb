"""The cross-encoder kind: a transformers sequence classifier reading (claim, statement) pairs,
one model for any claim.

Run directory files: model.safetensors and config.json (save_pretrained), the tokenizer files
(model_max_length = the trained max length, so `transformers.pipeline(..., truncation=True)`
truncates as training did) and training_curves.png. Training: stance.kinds.cross_encoder_training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..labels import LABELS
from ..rundir.files import check_labels, stamp

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import RunConfig
    from ..rundir.files import RunInfo

HYPER_PARAMETERS = (
    "seed", "epochs", "batch_size", "grad_accum", "lr", "weight_decay", "warmup_ratio",
    "class_weights", "patience", "mixed_precision",
)  # fmt: skip


class CrossEncoderKind:
    """`model.kind: cross-encoder` (the default, and the kind of a config.json without one)."""

    name = "cross-encoder"
    pairs = True
    weight_files = ("model.safetensors",)
    card_library = "transformers"
    card_tag = "claim-conditioned"

    def check_run(self, path: Path) -> None:
        """Nothing beyond stance.rundir.files.check_model_dir (config.json, safetensors)."""

    def train(self, cfg: RunConfig, resume: bool = False) -> dict:
        from .cross_encoder_training import run_pair_training

        return run_pair_training(cfg, resume)

    def save(self, cfg: RunConfig, model: Any, run_dir: Path, tokenizer: Any = None) -> None:
        if tokenizer is None:
            raise ValueError("save_run: a cross-encoder needs its tokenizer")
        stamp(model.config, cfg.data.claim, cfg.data.max_length)
        model.save_pretrained(run_dir)
        tokenizer.model_max_length = cfg.data.max_length  # pipeline(truncation=True) = training
        tokenizer.save_pretrained(run_dir)

    def load(self, run: RunInfo, dtype: Any = None) -> tuple[Any, Any]:
        from safetensors import SafetensorError
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                run.path, use_safetensors=True, dtype=dtype
            )
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as e:
            raise ModelLoadError(f"{run.path}: cannot load the model: {e}") from None
        check_labels(run.path, model.config.id2label)
        tokenizer = AutoTokenizer.from_pretrained(run.path)
        return model.eval(), tokenizer

    def fast_networks(self) -> tuple[type, ...]:
        from ..inference.kernels import FastBertClassifier

        return (FastBertClassifier,)

    def int8_layers(self) -> Callable[[str], bool] | None:
        return None  # every linear of the transformers forward

    def card_body(self, cfg: RunConfig, metrics: dict) -> str:
        return _pair_body(cfg, metrics)

    def train_summary(self, cfg: RunConfig, metrics: dict) -> str:
        if not metrics["dev"]:
            return ""
        from ..metrics import format_metrics

        return (
            f"dev metrics (groups {', '.join(metrics['dev_groups'][:10])}; "
            f"best step {metrics['best_step']} of {metrics['steps']}):\n"
            + format_metrics(metrics["dev"])
        )

    def fit_predict(
        self, cfg: RunConfig, train_ds: Dataset, test_ds: Dataset
    ) -> tuple[list[int], list[int]]:
        from .cross_encoder_training import fit_predict

        return fit_predict(cfg, train_ds, test_ds)

    def deterministic(self, cfg: RunConfig) -> bool:
        return cfg.train.epochs == 0 and cfg.model.base != "tiny"


def _pair_results(metrics: dict) -> str:
    from ..rundir.card import metrics_table

    dev = metrics.get("dev")
    if not dev:
        return "No dev set was used."
    groups = metrics["dev_groups"]
    return (
        f"Dev set: {metrics['dev_rows']} statements from groups "
        f"{', '.join(groups[:10])}{' ...' if len(groups) > 10 else ''}, never trained on.\n\n"
        f"- accuracy: **{dev['accuracy']:.3f}**\n- macro-F1: **{dev['macro_f1']:.3f}**\n\n"
        f"{metrics_table(dev)}\n\n![confusion matrix](confusion_matrix.png)"
    )


def _pair_body(cfg: RunConfig, metrics: dict) -> str:
    """The body of a cross-encoder's card."""
    from ..rundir.card import data_table

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

{data_table(cfg, with_dev=True)}

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
