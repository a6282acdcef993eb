"""The run directory: every file of a trained model is written and read through here.

Every kind::

    config.json        labels (id2label), the claim (stance_claim), the trained max length
                       (stance_max_length); `stance_kind` names the kind (none: cross-encoder)
    config.yaml        the resolved RunConfig, written once, when the run finishes
    metrics.json, README.md (model card), confusion_matrix.png (with a dev set)
    INCOMPLETE         present while training runs (with the config being run); removed last

Beside them, the kind's own files (ModelKind.weight_files, written by ModelKind.save): the
cross-encoder's model.safetensors, tokenizer files and training_curves.png
(stance.kinds.cross_encoder); the few-shot kind's head.safetensors and body/
(stance.kinds.sentence). Which kind a directory holds is read from config.json and looked up
in stance.kinds.registry; this module compares no kind names.

This module imports no torch at import time: `load_run` is cheap enough for the CLI to check
a model directory before anything heavy loads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_MAX_LENGTH, RunConfig, dump_config
from ..errors import ModelLoadError
from ..kinds.registry import get_kind, saved_kind
from ..labels import DEFAULT_CLAIM, LABELS

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

INCOMPLETE_MARKER = "INCOMPLETE"
CONFIG_YAML = "config.yaml"
METRICS_JSON = "metrics.json"
CARD_FILE = "README.md"
CURVES_PNG = "training_curves.png"
CONFUSION_PNG = "confusion_matrix.png"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


@dataclass(frozen=True)
class RunInfo:
    """What a run directory says about its model, read without loading it."""

    path: Path
    kind: str  # a name of stance.kinds.registry
    saved_claim: str | None  # None: a model saved without one (not by this package)
    max_length: int  # tokens per input the model was trained on

    @property
    def claim(self) -> str:
        """The model's claim, or the project's default claim for a model that has none."""
        return self.saved_claim or DEFAULT_CLAIM


def check_model_dir(path: str | Path) -> Path:
    """Refuse anything but a local, finished directory with safetensors weights (never
    unpickle); base models go through here too."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"{path}: model directory not found (the hub is not used)")
    if (path / INCOMPLETE_MARKER).is_file():
        raise ModelLoadError(
            f"{path}: training of this run did not finish ({INCOMPLETE_MARKER} marker); "
            "rerun the training (or resume it with --resume) before using it"
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: no config.json; expected a save_pretrained directory")
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise ModelLoadError(
                f"{path}: only pickle weights ({', '.join(pickles)}); refusing to unpickle. "
                "Convert them to safetensors with a trusted tool first."
            )
        raise ModelLoadError(f"{path}: no *.safetensors weights found")
    return path


def load_run(path: str | Path) -> RunInfo:
    """The kind, claim and trained max length of a finished run directory (any kind)."""
    path = check_model_dir(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: unreadable config.json: {e}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: config.json is not a JSON object")
    kind = saved_kind(config, path)
    get_kind(kind).check_run(path)
    max_length = config.get("stance_max_length") or _yaml_max_length(path)
    return RunInfo(path, kind, config.get("stance_claim") or None, int(max_length))


def _yaml_max_length(path: Path) -> int:
    """`data.max_length` of config.yaml: cross-encoder runs saved before config.json carried
    it; the default for a bare save_pretrained directory."""
    import yaml

    file = path / CONFIG_YAML
    try:
        saved = yaml.safe_load(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, yaml.YAMLError) as e:
        logger.warning("%s: unreadable (%s); max_length %d", file, e, DEFAULT_MAX_LENGTH)
        return DEFAULT_MAX_LENGTH
    data = (saved or {}).get("data") if isinstance(saved, dict) else None
    return int((data or {}).get("max_length", DEFAULT_MAX_LENGTH))


def stamp(config: PretrainedConfig, claim: str, max_length: int) -> None:
    """Write the claim and trained max length into a model's config (-> config.json)."""
    config.stance_claim = claim
    config.stance_max_length = max_length


# ---------------------------------------------------------------- writing


def mark_incomplete(cfg: RunConfig, run_dir: Path | None = None) -> None:
    """Mark the run directory unfinished until `save_run` (loading refuses it): a failed run
    must not leave a config.yaml that predict would read beside other weights."""
    run_dir = run_dir or cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / INCOMPLETE_MARKER).write_text(
        "training did not finish; retrain (or --resume) to complete this run\n" + dump_config(cfg),
        encoding="utf-8",
    )


def save_run(
    cfg: RunConfig,
    model: Any,
    metrics: dict,
    tokenizer: PreTrainedTokenizerBase | None = None,
    run_dir: Path | None = None,
) -> None:
    """Write a trained model and everything beside it, then remove the INCOMPLETE marker."""
    from ..util.plots import plot_confusion, plot_history
    from . import card

    run_dir = run_dir or cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    get_kind(cfg.model.kind).save(cfg, model, run_dir, tokenizer)
    if "history" in metrics:
        plot_history(metrics["history"], run_dir / CURVES_PNG, metrics.get("best_step"))
    (run_dir / CONFIG_YAML).write_text(dump_config(cfg), encoding="utf-8")
    (run_dir / METRICS_JSON).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if metrics.get("dev"):
        plot_confusion(metrics["dev"], run_dir / CONFUSION_PNG, f"{cfg.name}: dev")
    card.model_card(cfg, metrics).save(run_dir / CARD_FILE)
    (run_dir / INCOMPLETE_MARKER).unlink(missing_ok=True)  # last: every file above is written
    logger.info("saved run to %s", run_dir)


# ---------------------------------------------------------------- reading


def load_classifier(path: str | Path, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a trained run directory, of any kind, in eval mode."""
    run = load_run(path)
    return get_kind(run.kind).load(run, dtype)


def check_labels(path: Path, id2label: dict[Any, str]) -> None:
    names = set(id2label.values())
    if names != set(LABELS):
        raise ModelLoadError(
            f"{path}: model labels {sorted(names)} are not the stance labels {list(LABELS)}"
        )
