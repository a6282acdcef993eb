"""The GPU check's models and data: the tiny model, MiniLM, an mpnet-shaped encoder, the seed
rows and the training configs (benchmarks/gpu_check.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .gpu_bundle import MINILM_FP16, MPNET_SHAPE, ROOT
from .gpu_common import SEED_DATA, Context

logger = logging.getLogger(__name__)


def save_base(model: Any, tokenizer: Any, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def seed_texts() -> list[str]:
    from stance.data.statements import load_statements

    ds = load_statements(SEED_DATA)
    return [ds[0]["claim"], *ds["text"]]


def prepare_models(ctx: Context, dry_run: bool) -> None:
    """Base models as directories: tiny always; MiniLM from the bundle, the installed package,
    else an untrained model of MiniLM's shape (the speed is the same, the answers are not)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from stance.config import ModelConfig
    from stance.kinds.backbones import build_tiny, minilm_path
    from stance.labels import ID2LABEL, LABEL2ID, LABELS

    torch.manual_seed(0)
    tiny = ModelConfig(base="tiny", tiny_hidden=32, tiny_layers=2, tiny_heads=2, tiny_vocab=1000)
    model, tokenizer = build_tiny(tiny, seed_texts())
    ctx.models["tiny"] = save_base(model, tokenizer, ctx.workdir / "tiny-base")
    prepare_mpnet_shape(ctx, dry_run, tokenizer)
    if dry_run:
        ctx.notes["minilm"] = "not run: --dry-run uses the tiny model only"
        return
    if (MINILM_FP16 / "model.safetensors").is_file():
        ctx.models["minilm"], ctx.notes["minilm"] = MINILM_FP16, "MiniLM (fp16 bundle)"
        return
    try:
        ctx.models["minilm"], ctx.notes["minilm"] = minilm_path(), "MiniLM (installed package)"
        return
    except Exception as e:  # noqa: BLE001 - no package: fall back to the shape
        logger.warning("no MiniLM weights (%s); using an untrained model of its shape", e)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=len(LABELS),
        id2label=dict(ID2LABEL),
        label2id=dict(LABEL2ID),
        pad_token_id=tokenizer.pad_token_id,
    )
    shaped = BertForSequenceClassification(config)
    ctx.models["minilm"] = save_base(shaped, tokenizer, ctx.workdir / "minilm-shaped")
    ctx.notes["minilm"] = "untrained, MiniLM's shape (no weights carried: make gpu-bundle)"


def prepare_mpnet_shape(ctx: Context, dry_run: bool, tiny_tokenizer: Any) -> None:
    """An untrained classifier of all-mpnet-base-v2's shape (its weights cannot travel): from
    the bundle's config and tokenizer; on a dry run a tiny MPNet with the tiny tokenizer."""
    from transformers import AutoConfig, AutoTokenizer, MPNetConfig
    from transformers import AutoModelForSequenceClassification as Classifier

    from stance.labels import ID2LABEL, LABEL2ID

    labels = {"num_labels": 3, "id2label": dict(ID2LABEL), "label2id": dict(LABEL2ID)}
    if dry_run:
        config = MPNetConfig(
            vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, **labels,
        )  # fmt: skip
        tokenizer = tiny_tokenizer
        tokenizer.model_input_names = ["input_ids", "attention_mask"]  # MPNet has no types
        note = "tiny MPNet (dry run)"
    elif (MPNET_SHAPE / "config.json").is_file():
        config = AutoConfig.from_pretrained(MPNET_SHAPE, **labels)
        tokenizer = AutoTokenizer.from_pretrained(MPNET_SHAPE)
        note = "untrained, all-mpnet-base-v2's shape (its 438 MB of weights cannot travel)"
    else:
        ctx.notes["mpnet"] = "not run: no mpnet shape in .gpu-bundle (make mpnet gpu-bundle)"
        return
    model = Classifier.from_config(config)
    ctx.models["mpnet"] = save_base(model, tokenizer, ctx.workdir / "mpnet-shaped")
    ctx.notes["mpnet"] = note


def train_config(
    ctx: Context, name: str, batch_size: int, steps: int, compile: bool = False
) -> Any:
    from stance.config import load_config

    overrides = [
        f"model.base={ctx.models[name]}",
        f"train.max_steps={steps}",
        f"train.batch_size={batch_size}",
        "train.epochs=1000",
        "train.patience=0",
        "train.warmup_ratio=0.0",
        "data.max_length=128",
        f"output_dir={ctx.workdir / f'run-{name}'}",
        f"train.compile={str(compile).lower()}",
    ]
    return load_config(ROOT / "configs" / "withdrawal-seeds.yaml", overrides)


def load_fp32(cfg: Any, texts: Sequence[str] = ()) -> tuple[Any, Any]:
    """The base model in fp32 (transformers 5 keeps a checkpoint's dtype; the bundle is fp16)."""
    from stance.kinds.backbones import load_base

    model, tokenizer = load_base(cfg.model, texts)
    return model.float(), tokenizer


def repeated_rows(n: int) -> Any:
    from datasets import concatenate_datasets

    from stance.data.statements import load_statements

    ds = load_statements(SEED_DATA)
    return concatenate_datasets([ds] * -(-n // len(ds))).select(range(n))


def mean_lengths(tokenizer: Any, ds: Any, max_length: int = 128) -> list[int]:
    enc = tokenizer(list(ds["claim"]), list(ds["text"]), truncation=True, max_length=max_length)
    return [len(ids) for ids in enc["input_ids"]]
