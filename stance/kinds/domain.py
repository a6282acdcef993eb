"""Domain-adaptive tuning of a sentence body on unlabelled news (issue #22, part 4).

Unsupervised SimCSE (Gao et al., 2021) with sentence-transformers' own trainer and loss: each
sentence is its own positive, read twice with different dropout masks, and the other
sentences of the batch are its negatives (MultipleNegativesRankingLoss). TSDAE, the other
loss the issue names, needs a causal-LM decoder of the same checkpoint, and transformers has
none for MPNet, so SimCSE is the one that runs on both bases.

    python scripts/adapt_body.py --shared ../shared --output models/mpnet-news

writes a SentenceTransformer directory (safetensors) that a config names as `model.base`.
It is optional: `make train` needs nothing outside the repository, and whether the adapted
body earns its place is for whole-article CV to say (scripts/cv_table.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from datasets import Dataset

from ..config import RunConfig
from ..errors import ConfigError

logger = logging.getLogger(__name__)

PROVENANCE = "domain_adaptation.json"


@dataclass
class DomainArgs:
    """What `adapt_body` trains, on what (saved with the body as PROVENANCE)."""

    base: str = "mpnet"  # 'mpnet', 'minilm', 'tiny' (tests) or a local body directory
    sentences: int = 4000  # unlabelled sentences drawn from ../shared (0: all, ~37,500)
    epochs: int = 1
    batch_size: int = 32  # in-batch negatives: each sentence against the other 31
    lr: float = 3e-5  # SimCSE's unsupervised BERT-base setting
    freeze_layers: int = 0  # keep embeddings and the lowest N layers as they are
    max_length: int = 128  # as the configs' data.max_length
    seed: int = 42


def describe_base(base: str) -> str:
    """The model card's words for `model.base`: a body directory this module wrote says what
    it was tuned from and on."""
    path = Path(base) / PROVENANCE
    if not path.is_file():
        return f"base `{base}`"
    record = json.loads(path.read_text(encoding="utf-8"))
    return (
        f"base `{base}`: `{record['base']}` tuned by unsupervised SimCSE on "
        f"{record['sentences_used']:,} unlabelled news sentences (FNC-1 bodies and Emergent "
        f"headlines, ../shared; `{PROVENANCE}` there)"
    )


def simcse_adapt(body, sentences: list[str], args: DomainArgs) -> dict[str, float]:
    """Tune `body` in place on `sentences`; returns the trainer's training metrics."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from .body_training import fit_body
    from .sentence_model import freeze_lower_layers

    if len(sentences) < 2:
        raise ConfigError(f"domain adaptation: {len(sentences)} sentence(s); SimCSE needs 2+")
    freeze_lower_layers(body, args.freeze_layers)
    pairs = Dataset.from_dict({"anchor": sentences, "positive": sentences})
    loss = MultipleNegativesRankingLoss(body)
    return fit_body(
        body,
        pairs,
        loss,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def adapt_body(args: DomainArgs, sentences: list[str], output: str | Path) -> Path:
    """Load the base body, tune it on `sentences` and save it to `output` (a directory that
    `model.base` can name), with PROVENANCE; written beside and renamed into place."""
    from .sentence_model import load_body

    output = Path(output)
    if output.exists():
        raise ConfigError(f"{output}: exists; remove it or choose another --output")
    cfg = RunConfig()
    cfg.model.base, cfg.data.max_length, cfg.train.seed = args.base, args.max_length, args.seed
    torch.manual_seed(args.seed)
    body = load_body(cfg, sentences)
    start = time.perf_counter()
    metrics = simcse_adapt(body, sentences, args)
    seconds = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        body.save(str(staging), safe_serialization=True)
        record = {
            **asdict(args),
            "loss": "unsupervised SimCSE (MultipleNegativesRankingLoss, dropout as noise)",
            "sentences_used": len(sentences),
            "train_seconds": round(seconds, 1),
            "train_loss": metrics.get("train_loss"),
            "torch_threads": torch.get_num_threads(),
        }
        (staging / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("adapted body in %s (%.0f s, loss %s)", output, seconds, metrics.get("train_loss"))
    return output
