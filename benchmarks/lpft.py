"""LP-FT of the top layers: the accelerate loop over the whole body against the cached path.

Both train the default recipe (`configs/withdrawal.yaml`: mpnet, the lowest 10 of 12 layers
frozen, batch 8, 2 epochs) on the same rows, from the same probed head:

- `accelerate loop`: `fewshot.cache_frozen=false`, stance.training.loop.fit, every step runs
  all 12 layers forward (the lower 10 without gradients) and the top 2 backward;
- `cached lower layers`: `fewshot.cache_frozen=true`, stance.kinds.top_layers, the lower 10
  layers run once per text (counted in its time), each step runs the top 2.

Timed: `lpft_adapt` and the head re-fitted after it on the tuned features of the rows and their
neighbours (the cached path gets those from its states, the loop by running the whole body
again), as `train_sentence_model` does; the probe before it is the same in both.
"""

from __future__ import annotations

import time

import torch

from .common import ROOT


def _time_lpft(overrides: list[str], rows: int) -> tuple[float, int]:
    from stance.config import load_config
    from stance.data.statements import load_sources
    from stance.kinds.sentence_model import (
        SentenceStanceClassifier,
        embedding_size,
        fit_linear_probe,
        load_body,
        lpft_adapt,
        stance_config,
    )

    cfg = load_config(ROOT / "configs" / "withdrawal.yaml", overrides)
    ds = load_sources([(s.path, s.weight) for s in cfg.data.train], cfg.data.claim)
    ds = ds.shuffle(seed=0).select(range(min(rows, len(ds))))
    body = load_body(cfg, list(ds["text"]))
    config = stance_config(embedding_size(body), ds[0]["claim"], cfg.data.max_length, "mpnet")
    config.stance_context_weight = cfg.fewshot.context_weight
    model = SentenceStanceClassifier(body, config)
    fit_linear_probe(model, ds, cfg.fewshot.head_c, cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    start = time.perf_counter()
    tuned = lpft_adapt(model, cfg, ds)
    fit_linear_probe(tuned, ds, cfg.fewshot.head_c, cfg.train.seed)
    return time.perf_counter() - start, len(ds)


def run(rows: int) -> tuple[list[str], list[list[object]]]:
    recipe = ["fewshot.adapt=lpft", "fewshot.freeze_layers=10", "train.batch_size=8"]
    loop, n = _time_lpft([*recipe, "fewshot.cache_frozen=false"], rows)
    cached, _ = _time_lpft([*recipe, "fewshot.cache_frozen=true"], rows)
    headers = [
        "LP-FT and head re-fit (top 2 of 12 mpnet layers, 2 epochs)",
        "rows",
        "seconds",
        "rows/s",
        "speed-up",
    ]
    return headers, [
        ["accelerate loop (whole body forward)", n, loop, n / loop, 1.0],
        ["cached lower layers (stance.kinds.top_layers)", n, cached, n / cached, loop / cached],
    ]
