"""The few-shot model kind: a sentence-transformer body and a linear head, for one claim.

Like setfit, a body (all-MiniLM-L6-v2, all-mpnet-base-v2 or a tiny BERT in tests; mean
pooling, L2-normalised) and a head (3 logits). Training (`train_sentence_model`):

1. optionally adapt the body with SetFit's contrastive step (`fewshot.adapt: setfit`: pairs of
   same/different-label sentences, sentence-transformers' CosineSimilarityLoss and trainer);
2. linear probe: a class-balanced logistic regression on the frozen embeddings;
3. optionally LP-FT (`fewshot.adapt: lpft`; Kumar et al., ICLR 2022): start from that head and
   fine-tune body and head together at a small learning rate with the package's accelerate
   loop (`stance.training.loop.fit`, `train.*` settings). Starting from a fitted head keeps the
   first gradients from tearing up the pretrained features, which full fine-tuning from a random
   head does on ~50 sentences (measured in the CV table of docs/design/default-model.md).

The statement is encoded alone: the claim is fixed per model and stored in its config; a
different claim is refused at load time (`StancePredictor`), since the head knows one claim.
"""

from __future__ import annotations

import logging
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from ..config import RunConfig
from ..errors import ConfigError
from ..labels import ID2LABEL, LABEL2ID, LABELS

logger = logging.getLogger(__name__)

KIND = "sentence"  # stance.kinds.sentence.SentenceKind.name


class SentenceStanceClassifier(nn.Module):
    """Body -> mean pooling -> L2 norm -> linear head -> logits, in LABELS order.

    Forward takes the tokenizer's tensors like a transformers classifier and returns a
    `SequenceClassifierOutput`, so the training loop and the engine drive it unchanged.
    """

    def __init__(self, body: nn.Module, config: PretrainedConfig):
        super().__init__()
        self.body = body  # a SentenceTransformer
        self.config = config
        self.head = nn.Linear(config.hidden_size, len(LABELS))

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if attention_mask is None:  # the forward contract (stance.inference.kernels): no padding
            attention_mask = torch.ones_like(input_ids)
        out = self.body({"input_ids": input_ids, "attention_mask": attention_mask})
        emb = out["sentence_embedding"]
        return nn.functional.normalize(emb.float(), dim=-1).to(emb.dtype)  # norm in fp32

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted for a uniform call, unused
        **_: torch.Tensor,
    ) -> SequenceClassifierOutput:
        features = self.embed(input_ids, attention_mask)
        return SequenceClassifierOutput(logits=self.head(features))

    @property
    def tokenizer(self):
        return self.body.tokenizer


def stance_config(hidden_size: int, claim: str, max_length: int, base: str) -> PretrainedConfig:
    """The run's config.json: labels, claim and trained max length travel with the model."""
    return PretrainedConfig(
        stance_kind=KIND,
        hidden_size=hidden_size,
        id2label=dict(ID2LABEL),
        label2id=dict(LABEL2ID),
        stance_claim=claim,
        stance_max_length=max_length,
        max_position_embeddings=max_length,
        base_model=base,
        stance_context_weight=0.0,
    )


# ---------------------------------------------------------------- bodies


def _tiny_body_dir(cfg: RunConfig, texts: list[str], where: Path) -> Path:
    """A tiny BERT in sentence-transformers layout (tests): the cross-encoder's tiny model
    (`model.tiny_*`) without its classifier head."""
    from .backbones import build_tiny

    classifier, tokenizer = build_tiny(cfg.model, texts)
    classifier.bert.save_pretrained(where)  # with BERT's (unused) pooler: no missing weights
    tokenizer.save_pretrained(where)
    return where


def load_body(cfg: RunConfig, texts: list[str]):
    """The base sentence-transformer: 'minilm', 'mpnet', 'tiny' or a local directory."""
    from sentence_transformers import SentenceTransformer, models

    from ..rundir.files import check_model_dir
    from .backbones import minilm_path
    from .pypi import mpnet_path

    base = cfg.model.base
    if base == "tiny":
        with tempfile.TemporaryDirectory() as tmp:
            word = models.Transformer(str(_tiny_body_dir(cfg, texts, Path(tmp))))
        pooling = models.Pooling(word.get_embedding_dimension(), "mean")
        body = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
    else:
        path = {"minilm": minilm_path, "mpnet": mpnet_path}.get(base, lambda: None)()
        path = path or check_model_dir(base)
        body = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    body.max_seq_length = cfg.data.max_length
    return body


def embedding_size(body) -> int:
    getter = getattr(body, "get_embedding_dimension", None) or body.get_sentence_embedding_dimension
    return int(getter())


# ---------------------------------------------------------------- heads


def context_features(
    model: SentenceStanceClassifier, texts: list[str], prevs: list[str], nexts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(plain, in-context) features: u, and u + w * mean(u of the non-empty neighbours).

    Rows without neighbours get u in both. Linear in u: with a linear head the in-context
    logits are z + w * (mean(z of the neighbours) - bias), which is how the engine applies it.
    """
    w = float(getattr(model.config, "stance_context_weight", 0.0))
    unique = sorted({*texts, *prevs, *nexts} - {""})
    emb = dict(zip(unique, encode(model, unique), strict=True))
    plain = np.stack([emb[t] for t in texts])
    mixed = plain.copy()
    for i, near in enumerate(zip(prevs, nexts, strict=True)):
        near = [emb[t] for t in near if t]
        if w and near:
            mixed[i] += w * np.mean(near, axis=0)
    return plain, mixed


def rows_of(ds: Dataset) -> tuple[list[str], list[int], list[str], list[str]]:
    return list(ds["text"]), list(ds["label"]), list(ds["prev_text"]), list(ds["next_text"])


def fit_linear_probe(model: SentenceStanceClassifier, ds: Dataset, c: float, seed: int) -> None:
    """Class-balanced logistic regression on frozen features, copied into `model.head`.

    With a context weight, the head sees each row twice, alone and in its article context,
    so it serves free statements and sentences of whole articles alike.
    """
    from sklearn.linear_model import LogisticRegression

    texts, labels, prevs, nexts = rows_of(ds)
    plain, mixed = context_features(model, texts, prevs, nexts)
    has_context = np.array([bool(p or n) for p, n in zip(prevs, nexts, strict=True)])
    x, y = plain, np.array(labels)
    if getattr(model.config, "stance_context_weight", 0.0) and has_context.any():
        x, y = np.vstack([plain, mixed[has_context]]), np.concatenate([y, y[has_context]])
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    clf.fit(x, y)
    weight = torch.zeros(len(LABELS), x.shape[1])
    bias = torch.full((len(LABELS),), -30.0)  # a label never seen in training: never predicted
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # sklearn keeps one row for two classes: logit(p1) = w.x + b
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    for row, label in enumerate(clf.classes_):
        weight[label] = torch.from_numpy(coef[row]).float()
        bias[label] = float(intercept[row])
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)


@torch.inference_mode()
def encode(model: SentenceStanceClassifier, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalised sentence embeddings (N, H) as float32."""
    was_training = model.training
    model.eval()
    emb = model.body.encode(
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    model.train(was_training)
    return np.asarray(emb, dtype=np.float32)


# ---------------------------------------------------------------- body adaptation


# Issue #22's confusions: doubt read into neutral and supports sentences. Hard negatives pair
# each label only with the labels it is confused with.
HARD_NEGATIVES: dict[int, set[int]] = {
    LABEL2ID["doubts"]: {LABEL2ID["neutral"], LABEL2ID["supports"]},
    LABEL2ID["neutral"]: {LABEL2ID["doubts"]},
    LABEL2ID["supports"]: {LABEL2ID["doubts"]},
}


def contrastive_pairs(
    texts: list[str], labels: list[int], iterations: int, seed: int, hard: bool = False
) -> dict[str, list]:
    """SetFit's pair sampling: per iteration and sentence one positive and one negative pair;
    with `hard`, negatives come only from the labels in HARD_NEGATIVES."""
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    allowed = {y: (HARD_NEGATIVES.get(y, set()) if hard else set(by_label) - {y}) for y in by_label}
    others = {y: [j for j, z in enumerate(labels) if z in allowed[y]] for y in by_label}
    a, b, score = [], [], []
    for _ in range(iterations):
        for i, y in enumerate(labels):
            same = [j for j in by_label[y] if j != i]
            other = others[y]
            if same:
                a.append(texts[i]), b.append(texts[rng.choice(same)]), score.append(1.0)
            if other:
                a.append(texts[i]), b.append(texts[rng.choice(other)]), score.append(0.0)
    return {"sentence1": a, "sentence2": b, "score": score}


def setfit_adapt(model: SentenceStanceClassifier, cfg: RunConfig, ds: Dataset) -> None:
    """SetFit's contrastive step, with sentence-transformers' own trainer and loss."""
    from sentence_transformers.sentence_transformer import losses

    from .body_training import fit_body

    f = cfg.fewshot
    pairs = Dataset.from_dict(
        contrastive_pairs(
            list(ds["text"]),
            list(ds["label"]),
            f.setfit_iterations,
            cfg.train.seed,
            hard=f.setfit_hard_pairs,
        )
    )
    loss = losses.CosineSimilarityLoss(model.body)
    fit_body(
        model.body,
        pairs,
        loss,
        lr=f.setfit_lr,
        epochs=f.setfit_epochs,
        batch_size=f.setfit_batch_size,
        seed=cfg.train.seed,
        progress=False,
    )


def lpft_adapt(
    model: SentenceStanceClassifier, cfg: RunConfig, ds: Dataset
) -> SentenceStanceClassifier:
    """Fine-tune body and head from the probed head, in place; returns the model whose
    features a re-fitted head should read (the top-layer view with `fewshot.cache_frozen`)."""
    f = cfg.fewshot
    if f.caches_frozen and not torch.cuda.is_available():
        from .top_layers import lpft_top_adapt  # CPU: measured 1.8x the loop (BENCHMARKS.md)

        return lpft_top_adapt(model, cfg, ds)
    from ..training.loop import fit

    freeze_lower_layers(model.body, f.freeze_layers)
    fit(cfg, model, model.tokenizer, ds)  # the package's accelerate loop; no dev set
    model.to("cpu")
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def freeze_lower_layers(body: torch.nn.Module, layers: int) -> None:
    """Partial tuning: the body's embeddings and lowest `layers` encoder layers keep their
    weights."""
    if layers <= 0:
        return
    for name, param in body.named_parameters():
        if "embeddings" in name or any(f"layer.{i}." in name for i in range(layers)):
            param.requires_grad_(False)


def train_sentence_model(cfg: RunConfig, ds: Dataset) -> SentenceStanceClassifier:
    """The few-shot recipe of `cfg.fewshot` on the statement rows of `ds` (one claim)."""
    claims = set(ds["claim"])
    if len(claims) != 1:
        raise ConfigError(
            f"model.kind {KIND}: the training rows carry {len(claims)} claims; a sentence "
            "model is trained for one claim (use the cross-encoder for several)"
        )
    claim = claims.pop()
    f = cfg.fewshot
    torch.manual_seed(cfg.train.seed)
    body = load_body(cfg, [claim, *ds["text"]])
    config = stance_config(embedding_size(body), claim, cfg.data.max_length, cfg.model.base)
    config.stance_context_weight = f.context_weight
    model = SentenceStanceClassifier(body, config)
    if f.adapt == "setfit":
        setfit_adapt(model, cfg, ds)
    fit_linear_probe(model, ds, f.head_c, cfg.train.seed)
    if f.adapt == "lpft" and cfg.train.epochs > 0:
        tuned = lpft_adapt(model, cfg, ds)  # on sentences alone; context enters through the head
        if f.refit_head or f.context_weight:  # a head for the tuned body's own features
            fit_linear_probe(tuned, ds, f.head_c, cfg.train.seed)
    return model.eval()


@torch.inference_mode()
def predict_proba(
    model: SentenceStanceClassifier,
    texts: list[str],
    prevs: list[str] | None = None,
    nexts: list[str] | None = None,
) -> np.ndarray:
    """Probabilities (N, len(LABELS)) in LABELS order; neighbours, where given, as context."""
    blank = [""] * len(texts)
    _, x = context_features(model, texts, prevs or blank, nexts or blank)
    return torch.softmax(model.head(torch.from_numpy(x)), dim=-1).numpy()
