"""The few-shot kind's run directory: written and read here only.

config.json        labels (id2label), claim, trained max length, context weight, kind
head.safetensors   the linear head
body/              the sentence-transformer body (its own format; safetensors weights)
config.yaml, metrics.json, README.md (model card), confusion_matrix.png (with a dev file)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from transformers import PretrainedConfig

from .config import RunConfig
from .errors import ModelLoadError
from .fewshot import (
    KIND,
    SentenceStanceClassifier,
    predict_proba,
    rows_of,
    train_sentence_model,
)
from .labels import LABELS
from .modeling import check_model_dir

logger = logging.getLogger(__name__)

BODY_DIR = "body"
HEAD_FILE = "head.safetensors"


def run_sentence_training(cfg: RunConfig) -> dict:
    """Train on every labelled row (no dev split: the recipe was chosen by `stance cv`), score
    `data.dev` when given, and write the run directory."""
    from . import card
    from .data import label_counts, load_sources, load_statements
    from .metrics import compute_metrics
    from .train import finish_run, mark_incomplete

    train_ds = load_sources([(s.path, s.weight) for s in cfg.data.train], cfg.data.claim)
    logger.info(
        "train %d rows %s (all of them: no dev split)", len(train_ds), label_counts(train_ds)
    )
    start = time.perf_counter()
    model = train_sentence_model(cfg, train_ds)
    metrics: dict = {
        "kind": KIND,
        "dev": None,
        "train_rows": len(train_ds),
        "train_seconds": round(time.perf_counter() - start, 2),
    }
    if cfg.data.dev:
        dev_ds = load_statements(cfg.data.dev, model.config.stance_claim)
        texts, _, prevs, nexts = rows_of(dev_ds)
        preds = predict_proba(model, texts, prevs, nexts).argmax(-1).tolist()
        metrics |= {"dev": compute_metrics(preds, list(dev_ds["label"])), "dev_rows": len(dev_ds)}
    mark_incomplete(cfg, cfg.run_dir)
    save_sentence_model(model, cfg.run_dir)
    finish_run(cfg, metrics, card.sentence_model_card(cfg, metrics), cfg.run_dir)
    return metrics


def save_sentence_model(model: SentenceStanceClassifier, run_dir: Path) -> None:
    """config.json (labels, claim, kind), head.safetensors, and the body in `body/`."""
    from safetensors.torch import save_file

    run_dir.mkdir(parents=True, exist_ok=True)
    model.body.tokenizer.model_max_length = model.config.stance_max_length
    model.body.save(str(run_dir / BODY_DIR))
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(run_dir / HEAD_FILE))
    model.config.save_pretrained(run_dir)


def is_sentence_run(path: str | Path) -> bool:
    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("stance_kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_sentence_model(path: str | Path) -> SentenceStanceClassifier:
    """A saved sentence model, in eval mode; safetensors only, no remote code."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    path = check_model_dir(path)  # the run (INCOMPLETE marker, head.safetensors) ...
    check_model_dir(path / BODY_DIR)  # ... and its body
    config = PretrainedConfig.from_pretrained(path)
    names = set(config.id2label.values())
    if names != set(LABELS):
        raise ModelLoadError(f"{path}: labels {sorted(names)} are not {list(LABELS)}")
    try:
        body = SentenceTransformer(str(path / BODY_DIR), device="cpu", local_files_only=True)
        model = SentenceStanceClassifier(body, config)
        model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as e:
        raise ModelLoadError(f"{path}: cannot load the sentence model: {e}") from None
    body.max_seq_length = int(config.stance_max_length)
    return model.eval()
