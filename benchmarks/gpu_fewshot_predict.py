"""Prediction and label agreement of the few-shot kind in `scripts/gpu_check.py` (issue 23):
the rows `few-shot mpnet: predict` and `few-shot mpnet: labels` (see benchmarks/gpu_fewshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .gpu_fewshot import (
    attention_of,
    fnc1_bodies_csv,
    token_lengths,
    unseen_sentences,
)


def library_probs(ctx: Any, model: Any, texts: Sequence[str], batch: int) -> Any:
    """sentence-transformers' `encode` + the head: what a user would write by hand (bf16
    weights on CUDA, as the engine's), probabilities in LABELS order."""
    import torch

    body = model.body.to(ctx.device, dtype=torch.bfloat16 if ctx.cuda else torch.float32)
    head = model.head.to(ctx.device)
    with torch.inference_mode():
        emb = body.encode(list(texts), batch_size=batch, convert_to_tensor=True)
        emb = torch.nn.functional.normalize(emb.float(), dim=-1)
        return torch.softmax(head(emb), -1).cpu().numpy()


def predict_rows(ctx: Any, util: Any) -> list[Any]:
    """Sentences/s of the engine, of the network alone and of `stance predict` end to end,
    against sentence-transformers encode + head, at each mpnet predict batch."""
    import numpy as np

    from stance.inference.engine import StancePredictor
    from stance.kinds.sentence import load_sentence_model

    from .gpu_common import Row
    from .gpu_common import encoder_flops_per_example as per_example
    from .gpu_models import seed_texts
    from .gpu_prediction import _timed, forward_only_rate
    from .gpu_training import _mfu

    run_dir, s = ctx.trained["fewshot"], ctx.sizes
    texts = seed_texts()[1:]
    sentences = (texts * -(-s.predict_pairs // len(texts)))[: s.predict_pairs]
    model = load_sentence_model(run_dir)
    lengths = token_lengths(model, sentences, model.config.stance_max_length)
    flops = per_example(model.body[0].auto_model.config, lengths)
    rows = []
    for batch in s.mpnet_predict_batches:
        predictor = StancePredictor(run_dir, device=ctx.device, batch_size=batch)
        predictor.classify(sentences[: 2 * batch])  # warm-up
        with util.sampling():
            ours, probs = _timed(ctx, lambda p=predictor: p.classify(sentences))
        ours_util = util.summary()
        alone = forward_only_rate(ctx, predictor, sentences[: min(len(sentences), 16 * batch)])
        end_to_end, written = predict_files(ctx, run_dir)
        library_probs(ctx, model, sentences[: 2 * batch], batch)  # warm-up
        theirs, lib = _timed(ctx, lambda b=batch: library_probs(ctx, model, sentences, b))
        agree = float(np.mean(lib.argmax(1) == np.asarray(probs).argmax(1)))
        rate, lib_rate = len(sentences) / ours, len(sentences) / theirs
        rows.append(
            Row(
                check="predict few-shot mpnet (sentences/s)",
                setting=f"batch {batch}, {predictor.precision}",
                stance=f"{rate:,.0f} (alone {alone:,.0f}; stance predict {end_to_end:,.0f})",
                baseline=f"{lib_rate:,.0f} sentence-transformers encode + head",
                ratio=f"{rate / lib_rate:.2f}x",
                mfu=_mfu(ctx, rate * flops),
                gpu_util=ours_util,
                detail={
                    "sentences": len(sentences),
                    "stance_seconds": ours,
                    "library_seconds": theirs,
                    "network_alone_sentences_per_s": alone,
                    "stance_predict_sentences_per_s": end_to_end,
                    "stance_predict_sentences": written,
                    "label_agreement_with_library": agree,
                    "net": type(predictor.net).__name__,
                    "attention": attention_of(model),
                    "forward_flops_per_sentence": flops,
                    "mfu_counts": "real (non-padding) tokens of the sentences classified",
                },
            )
        )
        del predictor
    return rows


def predict_files(ctx: Any, run_dir: Any) -> tuple[float, int]:
    """`stance predict`'s own path (run_prediction with its default chunks: read, segment with
    pysbd, classify, write) over the seed articles repeated: (sentences/s, sentences written).
    Segmentation is counted: it is host work a user's run pays."""
    import time

    from stance.inference.engine import StancePredictor
    from stance.predict.run import run_prediction

    from .gpu_common import synchronize
    from .gpu_prediction import _write_articles

    articles, output = ctx.workdir / "fewshot-articles.jsonl", ctx.workdir / "fewshot.jsonl"
    _write_articles(articles, 4 * ctx.sizes.article_copies)
    predictor = StancePredictor(run_dir, device=ctx.device)
    start = time.perf_counter()
    report = run_prediction(predictor, [str(articles)], output)
    synchronize(ctx)
    seconds = time.perf_counter() - start
    if report.failures:
        raise RuntimeError(f"stance predict: {report.failures[0].error}")
    written = len(output.read_bytes().splitlines())
    return written / seconds, written


def agreement_row(ctx: Any, what: str, texts: Sequence[str]) -> Any:
    """Labels on the device (bf16 weights on CUDA) against float32 on the CPU."""
    import numpy as np

    from stance.inference.engine import StancePredictor

    from .gpu_common import Row

    run_dir = ctx.trained["fewshot"]
    here = StancePredictor(run_dir, device=ctx.device).classify(list(texts))
    cpu = StancePredictor(run_dir, device="cpu").classify(list(texts))
    agree = float(np.mean(here.argmax(1) == cpu.argmax(1)))
    gap = float(np.abs(here - cpu).max())
    precision = "bf16" if ctx.cuda else "fp32"
    return Row(
        check=f"labels few-shot mpnet: {precision} on {ctx.device} vs fp32 on cpu",
        setting=f"{len(texts)} {what}",
        stance=f"{100 * agree:.1f}% agree, max prob gap {gap:.3f}",
        status="ok" if agree >= 0.99 or not ctx.cuda else "FAILED: under 99% agreement",
        detail={"agreement": agree, "max_probability_gap": gap, "sentences": len(texts)},
    )


def label_rows(ctx: Any, util: Any) -> list[Any]:
    from .gpu_common import Row
    from .gpu_models import seed_texts

    rows = [agreement_row(ctx, "seed sentences", seed_texts()[1:])]
    if fnc1_bodies_csv().is_file():
        rows.append(agreement_row(ctx, "unseen FNC-1 sentences", unseen_sentences()))
    else:
        why = f"not run: no {fnc1_bodies_csv()} (carry ../shared)"
        rows.append(Row("labels few-shot mpnet, unseen FNC-1 sentences", status=why))
    return rows
