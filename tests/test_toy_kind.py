"""A third model kind is one new module plus one registry line: a bag-of-words naive Bayes kind,
defined here and registered in one line, trains, saves, loads, predicts and cross-validates
through the package's generic paths (stance.train, stance.rundir, the engine, `stance predict`,
stance.evaluation.crossval), none of which names it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SEEDS, tiny_config
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from stance import cli
from stance.kinds import registry
from stance.labels import ID2LABEL, LABEL2ID, LABELS

NAME = "bag-of-words"
WEIGHTS = "bow.safetensors"


class BagOfWords(nn.Module):
    """Logits = the sum of per-token log-likelihoods plus log-priors (multinomial naive Bayes)."""

    def __init__(self, config: PretrainedConfig, vocab: int):
        super().__init__()
        self.config = config
        self.token_logp = nn.Embedding(vocab, len(LABELS))
        self.prior = nn.Parameter(torch.zeros(len(LABELS)))

    def forward(self, input_ids, attention_mask=None, **_: Any) -> SequenceClassifierOutput:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        tokens = self.token_logp(input_ids) * mask.unsqueeze(-1).to(self.prior.dtype)
        return SequenceClassifierOutput(logits=tokens.sum(1) + self.prior)


def fit_bag_of_words(cfg, ds, tokenizer) -> BagOfWords:
    config = PretrainedConfig(
        stance_kind=NAME, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID),
        stance_claim=cfg.data.claim, stance_max_length=cfg.data.max_length,
    )  # fmt: skip
    counts = np.ones((len(tokenizer), len(LABELS)))  # add-one smoothing
    for claim, text, label in zip(ds["claim"], ds["text"], ds["label"], strict=True):
        for i in tokenizer(claim, text, truncation=True, max_length=cfg.data.max_length)[
            "input_ids"
        ]:
            counts[i, label] += 1
    model = BagOfWords(config, len(tokenizer))
    prior = np.bincount(list(ds["label"]), minlength=len(LABELS)) + 1.0
    with torch.no_grad():
        model.token_logp.weight.copy_(torch.from_numpy(np.log(counts / counts.sum(0))))
        model.prior.copy_(torch.from_numpy(np.log(prior / prior.sum())))
    return model.eval()


class BagOfWordsKind:
    """The whole kind: what stance.kinds.base.ModelKind asks for."""

    name = NAME
    pairs = True
    weight_files = (WEIGHTS,)
    card_library = "stance"
    card_tag = "bag-of-words"

    def check_run(self, path: Path) -> None:
        pass

    def train(self, cfg, resume: bool = False) -> dict:
        from stance.data.training_rows import load_training_data
        from stance.kinds.backbones import train_tiny_tokenizer
        from stance.rundir.files import mark_incomplete, save_run

        mark_incomplete(cfg)
        start = time.perf_counter()
        train_ds, _ = load_training_data(cfg)
        tokenizer = train_tiny_tokenizer([*train_ds["claim"], *train_ds["text"]], 500)
        model = fit_bag_of_words(cfg, train_ds, tokenizer)
        metrics = {"dev": None, "train_rows": len(train_ds)}
        metrics["train_seconds"] = round(time.perf_counter() - start, 2)
        save_run(cfg, model, metrics, tokenizer)
        return metrics

    def save(self, cfg, model, run_dir: Path, tokenizer=None) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, run_dir / WEIGHTS)
        model.config.save_pretrained(run_dir)
        tokenizer.save_pretrained(run_dir)

    def load(self, run, dtype=None):
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(run.path)  # the fast one the engine needs
        model = BagOfWords(PretrainedConfig.from_pretrained(run.path), len(tokenizer))
        model.load_state_dict(load_file(run.path / WEIGHTS))
        return model.eval(), tokenizer

    def fast_networks(self) -> tuple[type, ...]:
        return ()

    def int8_layers(self) -> Callable[[str], bool] | None:
        return None

    def card_body(self, cfg, metrics: dict) -> str:
        return f"# {cfg.name}\n\nA bag-of-words naive Bayes on {metrics['train_rows']} rows.\n"

    def train_summary(self, cfg, metrics: dict) -> str:
        return f"bag of words: {metrics['train_rows']} rows"

    def fit_predict(self, cfg, train_ds, test_ds):
        from stance.kinds.backbones import train_tiny_tokenizer

        tokenizer = train_tiny_tokenizer([*train_ds["claim"], *train_ds["text"]], 500)
        model = fit_bag_of_words(cfg, train_ds, tokenizer)
        enc = tokenizer(
            list(test_ds["claim"]),
            list(test_ds["text"]),
            padding=True,
            truncation=True,
            max_length=cfg.data.max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            logits = model(enc["input_ids"], enc["attention_mask"]).logits
        return logits.argmax(-1).tolist(), list(test_ds["label"])

    def deterministic(self, cfg) -> bool:
        return True


@pytest.fixture
def bag_of_words(monkeypatch):
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))  # undone after the test
    registry.register(NAME, BagOfWordsKind())  # the one registry line a new kind needs
    return NAME


def test_the_toy_kind_is_a_model_kind(bag_of_words):
    from stance.kinds.base import ModelKind

    assert isinstance(registry.get_kind(NAME), ModelKind)


def test_a_third_kind_trains_saves_loads_and_predicts(bag_of_words, tmp_path, capsys):
    from stance.inference.engine import StancePredictor
    from stance.rundir.files import load_run

    run_dir = tmp_path / "run"
    assert cli.main(["train", "--config", "configs/tiny.yaml", "--output-dir", str(run_dir),
                     f"model.kind={NAME}"]) == 0  # fmt: skip
    assert "bag of words:" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["stance_kind"] == NAME
    assert (run_dir / WEIGHTS).is_file() and not (run_dir / "INCOMPLETE").exists()
    assert "naive Bayes" in (run_dir / "README.md").read_text()
    assert load_run(run_dir).kind == NAME

    article = (SEEDS / "000_88a8283e57a9c995.txt").read_text()
    predictor = StancePredictor(run_dir, relevance=False)
    rows = predictor.predict([article])
    assert rows and all(math.isclose(sum(r.probs.values()), 1.0, abs_tol=1e-5) for r in rows)

    out = tmp_path / "out.jsonl"
    args = ["predict", str(SEEDS), "--model", str(run_dir), "--output", str(out)]
    assert cli.main([*args, "--no-relevance"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) > len(rows) and {line["label"] for line in lines} <= set(LABELS)


def test_a_third_kind_cross_validates(bag_of_words):
    from stance.evaluation.crossval import cross_validate

    report = cross_validate(tiny_config(None, f"model.kind={NAME}"), seeds=3)
    assert len(report["runs"]) == len(report["baseline"])  # deterministic: one seed a fold
    assert 0 <= report["summary"]["macro_f1_mean"] <= 1
