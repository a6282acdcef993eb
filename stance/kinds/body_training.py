"""sentence-transformers' own trainer for the steps that tune a sentence body on pairs: the
SetFit step (stance.kinds.sentence_model.setfit_adapt) and SimCSE on unlabelled news
(stance.kinds.domain). One place for their training arguments."""

from __future__ import annotations

import tempfile

import torch
from datasets import Dataset


def fit_body(
    body,
    pairs: Dataset,
    loss,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    progress: bool = True,
) -> dict[str, float]:
    """sentence-transformers' own trainer on `pairs` with `loss`, no checkpoints (bf16 on a
    GPU); the body ends on the CPU, every weight trainable again."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            warmup_ratio=0.1,
            seed=seed,
            save_strategy="no",
            report_to="none",
            disable_tqdm=not progress,
            bf16=torch.cuda.is_available(),
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = SentenceTransformerTrainer(model=body, args=args, train_dataset=pairs, loss=loss)
        result = trainer.train()
    body.to("cpu")
    for p in body.parameters():
        p.requires_grad_(True)
    return dict(result.metrics)
