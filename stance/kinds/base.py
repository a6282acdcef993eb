"""The ModelKind interface: everything that differs between model kinds, in one place.

A kind (`model.kind` in a config, `stance_kind` in a saved config.json) says how its base is
built, how it trains, which files of the run directory hold its weights and how they load,
which network the engine runs, what its model card says and what cross-validation does with
it. The generic code (stance.train, stance.rundir, stance.inference.engine, stance.evaluation,
stance.cli) asks the registry (stance.kinds.registry) for the kind and calls these methods;
it never compares kind names.

Implementations must import nothing heavy (torch, transformers) at module level: the CLI
resolves a kind to check a run directory before anything slow loads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import RunConfig
    from ..rundir.files import RunInfo


@runtime_checkable
class ModelKind(Protocol):
    """What a model kind provides; see stance.kinds.cross_encoder for a full example."""

    name: str  # `model.kind` and `stance_kind`
    pairs: bool  # reads (claim, statement) pairs; False: the statement alone, one claim a model
    weight_files: tuple[str, ...]  # its files in the run directory (beside config.json)
    card_library: str  # the model card's `library_name`
    card_tag: str  # the model card's tag beside "stance-detection"

    def check_run(self, path: Path) -> None:
        """Refuse (ModelLoadError) a finished run directory that lacks this kind's files."""
        ...

    def train(self, cfg: RunConfig, resume: bool = False) -> dict:
        """A whole training run per `cfg`: build the base, train, write the run directory
        (stance.rundir.files.save_run); returns the metrics written to metrics.json."""
        ...

    def save(self, cfg: RunConfig, model: Any, run_dir: Path, tokenizer: Any = None) -> None:
        """Write the model's own files (weights, config.json, tokenizer) into `run_dir`."""
        ...

    def load(self, run: RunInfo, dtype: Any = None) -> tuple[Any, Any]:
        """(model, tokenizer) of a run directory, in eval mode. The model's forward takes the
        tokenizer's tensors and returns an object with `.logits`; `model.config` carries
        `id2label` and the stance_* keys."""
        ...

    def fast_networks(self) -> tuple[type, ...]:
        """Lean inference forwards the engine may use instead of the model's own (each checked
        against it at load time; stance.inference.kernels); () for none."""
        ...

    def int8_layers(self) -> Callable[[str], bool] | None:
        """Which linears of the model's own forward int8 quantises (None: all of them)."""
        ...

    def card_body(self, cfg: RunConfig, metrics: dict) -> str:
        """The Markdown body of the run's model card (README.md)."""
        ...

    def train_summary(self, cfg: RunConfig, metrics: dict) -> str:
        """What `stance train` prints after the run directory ('' for nothing)."""
        ...

    def fit_predict(
        self, cfg: RunConfig, train_ds: Dataset, test_ds: Dataset
    ) -> tuple[list[int], list[int]]:
        """Cross-validation: train one fold's model; (predicted, gold) label ids of `test_ds`."""
        ...

    def deterministic(self, cfg: RunConfig) -> bool:
        """True when the recipe draws no random numbers (CV then runs one seed)."""
        ...
