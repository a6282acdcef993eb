"""The few-shot sentence kind: a sentence-transformer body and a linear head, for one claim.

Run directory files: config.json (labels, claim, trained max length, `stance_kind: sentence`,
context weight, calibration), head.safetensors (the linear head) and the body in `body/`
(sentence-transformers layout). The model: stance.kinds.sentence_model; its training run:
stance.kinds.sentence_training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..labels import LABELS
from ..rundir.files import check_labels, check_model_dir, load_run

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import RunConfig
    from ..rundir.files import RunInfo
    from .sentence_model import SentenceStanceClassifier

BODY_DIR = "body"  # the sentence-transformer body
HEAD_FILE = "head.safetensors"  # the linear head


class SentenceKind:
    """`model.kind: sentence`."""

    name = "sentence"
    pairs = False
    weight_files = (HEAD_FILE, f"{BODY_DIR}/model.safetensors")
    card_library = "sentence-transformers"
    card_tag = "few-shot"

    def check_run(self, path: Path) -> None:
        check_model_dir(path / BODY_DIR)

    def train(self, cfg: RunConfig, resume: bool = False) -> dict:
        from .sentence_training import run_sentence_training

        return run_sentence_training(cfg)  # minutes at most: nothing to resume

    def save(self, cfg: RunConfig, model: Any, run_dir: Path, tokenizer: Any = None) -> None:
        # Its claim is its training rows' one claim, stamped when the model was built.
        save_sentence_model(model, run_dir)

    def load(self, run: RunInfo, dtype: Any = None) -> tuple[Any, Any]:
        model = _load(run)
        if dtype is not None:
            model.to(dtype)
        return model, model.tokenizer

    def fast_networks(self) -> tuple[type, ...]:
        from ..inference.sentence_kernels import FastSentenceClassifier

        return (FastSentenceClassifier,)

    def int8_layers(self) -> Callable[[str], bool] | None:
        from ..inference.kernels import ffn_layer

        return ffn_layer

    def card_body(self, cfg: RunConfig, metrics: dict) -> str:
        return _sentence_body(cfg, metrics)

    def train_summary(self, cfg: RunConfig, metrics: dict) -> str:
        text = (
            f"few-shot model ({cfg.model.base}, adapt {cfg.fewshot.adapt}): trained on "
            f"{metrics['train_rows']} statements in {metrics['train_seconds']:.0f} s; every "
            "labelled row is used, so judge it by `stance cv`"
        )
        if metrics["dev"]:
            from ..metrics import format_metrics

            text += f"\non {cfg.data.dev}:\n{format_metrics(metrics['dev'])}"
        return text

    def fit_predict(
        self, cfg: RunConfig, train_ds: Dataset, test_ds: Dataset
    ) -> tuple[list[int], list[int]]:
        from .sentence_model import predict_proba, rows_of, train_sentence_model

        model = train_sentence_model(cfg, train_ds)
        texts, _, prevs, nexts = rows_of(test_ds)
        preds = predict_proba(model, texts, prevs, nexts).argmax(-1).tolist()
        return preds, list(test_ds["label"])

    def deterministic(self, cfg: RunConfig) -> bool:
        return cfg.fewshot.adapt == "none" and cfg.model.base != "tiny"


def save_sentence_model(model: SentenceStanceClassifier, run_dir: Path) -> None:
    """A few-shot model's weights: config.json (labels, claim, kind), head.safetensors, and
    the body in `body/`."""
    from safetensors.torch import save_file

    run_dir.mkdir(parents=True, exist_ok=True)

    model.body.tokenizer.model_max_length = model.config.stance_max_length
    model.body.save(str(run_dir / BODY_DIR))
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(run_dir / HEAD_FILE))
    model.config.save_pretrained(run_dir)


def load_sentence_model(path: str | Path) -> SentenceStanceClassifier:
    """A saved few-shot model, in eval mode; safetensors only, no remote code."""
    run = load_run(path)
    if run.kind != SentenceKind.name:
        raise ModelLoadError(f"{run.path}: not a few-shot (sentence) run directory")
    return _load(run)


def _load(run: RunInfo) -> SentenceStanceClassifier:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer
    from transformers import PretrainedConfig

    from .sentence_model import SentenceStanceClassifier

    config = PretrainedConfig.from_pretrained(run.path)
    check_labels(run.path, config.id2label)
    try:
        body = SentenceTransformer(str(run.path / BODY_DIR), device="cpu", local_files_only=True)
        model = SentenceStanceClassifier(body, config)
        model.head.load_state_dict(load_file(str(run.path / HEAD_FILE)))
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as e:
        raise ModelLoadError(f"{run.path}: cannot load the sentence model: {e}") from None
    body.max_seq_length = run.max_length
    return model.eval()


def _recipe(cfg: RunConfig) -> str:
    f, t = cfg.fewshot, cfg.train
    recipe = {
        "none": "frozen body (the pretrained sentence embedding as it is, not fine-tuned) "
        "and a trained class-balanced logistic-regression head",
        "lpft": f"linear probe, then body and head fine-tuned (LP-FT) for {t.epochs:g} epochs "
        f"at lr {t.lr:g}, batch {t.batch_size}, "
        + (
            f"the lowest {f.freeze_layers} layers frozen"
            if f.freeze_layers
            else "every layer tuned"
        )
        + (" (run once per text: only the top layers train)" if f.caches_frozen else ""),
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
    from ..rundir.card import data_table, metrics_table
    from .domain import describe_base

    dev = metrics.get("dev")
    results = (
        f"On `{cfg.data.dev}`: accuracy **{dev['accuracy']:.3f}**, macro-F1 "
        f"**{dev['macro_f1']:.3f}**.\n\n{metrics_table(dev)}"
        if dev
        else "Trained on every labelled row; see `stance cv` (README) for held-out-article scores."
    )
    cal = metrics.get("calibration")
    if cal:
        results += (
            "\n\nCalibrated: label offsets "
            + ", ".join(f"{k} {b:+.3f}" for k, b in zip(LABELS, cal["bias"], strict=True))
            + " added to the logits (fitted on leave-one-article-out predictions of the "
            "training articles, stance.kinds.calibration; `stance_calibration` in config.json)."
        )
    return f"""# {cfg.name}

A few-shot stance classifier for **one claim**: "{cfg.data.claim}"

It says whether a statement **{LABELS[0]}**, **{LABELS[1]}** or is **{LABELS[2]}** toward that
claim. A sentence-transformer body (`body/`, {describe_base(cfg.model.base)}, mean pooling, L2
normalised) and a linear head (`head.safetensors`); labels, claim and max length
({cfg.data.max_length} tokens) are in `config.json`. Recipe: {_recipe(cfg)}.
Another claim needs another model (or the cross-encoder kind).

## Use

`stance predict --model {cfg.run_dir} ARTICLES... --output predictions.jsonl`, or
`stance.inference.engine.StancePredictor("{cfg.run_dir}").predict(["An article. ..."])`.

## Training data

{data_table(cfg, with_dev=False)}

{metrics["train_rows"]} statements; {metrics["train_seconds"]} s of training.

## Results

{results}

## Limitations

- Few labels: the files above (their datasheets are in data/README.md); for the default,
  63 sentences of three real articles and the rest written for the project, not real news.
- English news prose only; a stance label is not a fact check.
"""
