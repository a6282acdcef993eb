"""The run configuration's schema: one dataclass per YAML section, each key with its help text
(`stance train --help` lists them; stance.config.loading reads and checks them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..labels import DEFAULT_CLAIM

# Tokens per input when a config sets none; a run directory records its own (stance.rundir.files).
DEFAULT_MAX_LENGTH = 128


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class DataSource:
    path: str = _help("statement file (JSON Lines, data/ANNOTATION.md format)")
    weight: float = _help("loss weight of every row from this file", default=1.0)
    cv_score: bool = _help(
        "stance cv scores this file's rows when their group is held out; false: training "
        "only (written variants of seed sentences, kept with their article's fold)",
        default=True,
    )


@dataclass
class DataConfig:
    train: list[DataSource] = _help(
        "training files, each with an optional weight", default_factory=list
    )
    dev: str | None = _help(
        "dev file; when empty, a group split of the training data", default=None
    )
    dev_fraction: float = _help("share of rows (whole groups) held out as dev", default=0.25)
    split_seed: int | None = _help(
        "seed of the dev split (default: train.seed); fix it to compare seeds on one dev set",
        default=None,
    )
    claim: str = _help("claim for rows that carry none", default=DEFAULT_CLAIM)
    max_length: int = _help(
        "max tokens per (claim, statement) pair; longer is truncated", default=DEFAULT_MAX_LENGTH
    )
    paraphrases: int = _help(
        "extra training rows per row, each with another supporting statement of its group "
        "as the claim (0: off; see stance.data.statements.paraphrase_claims)",
        default=0,
    )
    paraphrase_weight: float = _help(
        "loss weight of a paraphrase row, times its row's", default=0.5
    )
    negations: bool = _help(
        "add every training row again with its claim negated and supports/doubts swapped, so "
        "that only the claim tells the copies apart (stance.data.negation)",
        default=False,
    )


@dataclass
class ModelConfig:
    kind: str = _help(
        "'cross-encoder' (claim and statement read together; one model for any claim) or "
        "'sentence' (few-shot: sentence-transformer body + linear head, for one claim)",
        default="cross-encoder",
    )
    base: str = _help(
        "'minilm' (bundled all-MiniLM-L6-v2), 'mpnet' (all-mpnet-base-v2, `make mpnet`), "
        "'tiny' (2-layer BERT built locally), or a local save_pretrained directory",
        default="minilm",
    )
    tiny_hidden: int = _help("hidden size of the tiny model", default=32)
    tiny_layers: int = _help("layers of the tiny model", default=2)
    tiny_heads: int = _help("attention heads of the tiny model", default=2)
    tiny_vocab: int = _help("WordPiece vocabulary size of the tiny tokenizer", default=2000)
    dropout: float | None = _help("override hidden/attention dropout of the base", default=None)


@dataclass
class TrainConfig:
    seed: int = _help("seed for python, numpy, torch and the data order", default=42)
    epochs: float = _help("passes over the training data (0: evaluate the base only)", default=10)
    max_steps: int = _help("stop after this many optimizer steps (0: no limit)", default=0)
    batch_size: int = _help(
        "examples per optimizer step per device, before accumulation", default=16
    )
    eval_batch_size: int = _help("examples per evaluation batch", default=64)
    grad_accum: int = _help("gradient accumulation steps", default=1)
    lr: float = _help("peak learning rate of AdamW", default=5e-5)
    weight_decay: float = _help("AdamW weight decay (not on biases and LayerNorm)", default=0.01)
    warmup_ratio: float = _help("share of steps with linear warm-up", default=0.1)
    max_grad_norm: float = _help("gradient clipping norm (0: off)", default=1.0)
    class_weights: bool = _help("weight the loss by inverse label frequency", default=True)
    patience: int = _help(
        "evaluations without dev macro-F1 gain before stopping (0: off)", default=3
    )
    eval_every: int = _help("evaluate every N optimizer steps (0: once per epoch)", default=0)
    checkpoint_every: int = _help("save a resumable checkpoint every N steps (0: off)", default=0)
    keep_checkpoints: int = _help("how many recent checkpoints to keep", default=2)
    mixed_precision: str = _help(
        "'auto' (bf16 on a bf16 GPU, else no), 'no', 'bf16', 'fp16'", default="auto"
    )
    num_threads: int = _help("CPU threads for torch (0: torch's default)", default=0)
    loader_workers: int = _help(
        "DataLoader worker processes for training batches (-1: 2 on CUDA, so fetching and "
        "padding overlap the step; 0 on the CPU, whose cores the step already uses)",
        default=-1,
    )
    compile: bool = _help(
        "torch.compile the model (fewer kernel launches per step on CUDA; compiling costs "
        "time at the start and for each new batch shape)",
        default=False,
    )


@dataclass
class FewShotConfig:
    adapt: str = _help(
        "how the sentence body is adapted: 'none' (frozen body + head), 'lpft' (linear probe, "
        "then all weights with train.*), 'setfit' (contrastive pairs, then the head)",
        default="lpft",
    )
    head_c: float = _help("inverse L2 strength of the logistic-regression head", default=1.0)
    context_weight: float = _help(
        "weight w of the article context: a sentence's features are u + w * mean(u of the "
        "sentences just before and after it), where known; the head learns both forms, so "
        "free statements work too (0: off)",
        default=0.0,
    )
    refit_head: bool = _help("lpft: re-fit the head on the tuned body's features", default=False)
    freeze_layers: int = _help("lpft: keep embeddings and the lowest N layers frozen", default=0)
    cache_frozen: bool = _help(
        "lpft with freeze_layers > 0, on a machine without CUDA: run the frozen layers once "
        "per text and train the top layers on their cached output (stance.kinds.top_layers: "
        "float32, no dropout in the frozen layers); with a GPU, and when false, the accelerate "
        "loop over the whole body (bf16, multi-GPU)",
        default=False,
    )
    setfit_iterations: int = _help("setfit: pair iterations per sentence", default=20)
    setfit_epochs: int = _help("setfit: epochs over the pairs", default=1)
    setfit_lr: float = _help("setfit: learning rate of the contrastive step", default=2e-5)
    setfit_batch_size: int = _help("setfit: pairs per batch", default=16)
    setfit_hard_pairs: bool = _help(
        "setfit: negatives only from the confused labels (doubts against neutral and "
        "supports), not from any other label",
        default=False,
    )
    calibrate: bool = _help(
        "fit a temperature and label offsets on leave-one-article-out predictions of the "
        "training rows (stance.kinds.calibration) and store them in the run for the engine",
        default=False,
    )

    @property
    def caches_frozen(self) -> bool:
        """Whether `cache_frozen` applies: there are frozen layers to run once per text."""
        return self.cache_frozen and self.freeze_layers > 0


@dataclass
class RunConfig:
    name: str = _help("run name; the run directory is models/<name> by default", default="run")
    output_dir: str | None = _help("run directory (default models/<name>)", default=None)
    data: DataConfig = _help("training data", default_factory=DataConfig)
    model: ModelConfig = _help("base model", default_factory=ModelConfig)
    train: TrainConfig = _help("optimisation", default_factory=TrainConfig)
    fewshot: FewShotConfig = _help(
        "few-shot recipe (model.kind: sentence)", default_factory=FewShotConfig
    )

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or Path("models") / self.name)
