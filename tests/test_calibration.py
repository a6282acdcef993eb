"""Calibration: fitted offsets undo a label bias; the run stores them; the engine applies them."""

import json

import numpy as np
import pytest
from conftest import DATA, ROOT

from stance.cli import main
from stance.inference.engine import StancePredictor
from stance.kinds.calibration import Calibration, fit_calibration, oof_head_probs, softmax
from stance.labels import LABEL2ID

CONFIG = ROOT / "configs" / "tiny-fewshot.yaml"
DBT = LABEL2ID["doubts"]


def biased_probs(n: int = 600, bias: float = 1.5, seed: int = 0):
    """A model that knows the label but adds `bias` to the doubts logit."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = 2.0 * np.eye(3)[y] + rng.normal(0, 1.0, (n, 3))
    logits[:, DBT] += bias
    return softmax(logits), y


def nll(p, y):
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def test_offsets_undo_a_doubt_bias():
    p, y = biased_probs()
    cal = fit_calibration(p, y)
    assert cal.temperature == 1.0 and abs(sum(cal.bias)) < 1e-5
    assert cal.bias[DBT] < -0.8  # it learnt to take doubt back
    fixed = cal.apply(p)
    assert nll(fixed, y) < nll(p, y)
    assert (fixed.argmax(1) == DBT).sum() < (p.argmax(1) == DBT).sum()
    # on unbiased data there is nearly nothing to correct
    q, z = biased_probs(bias=0.0, seed=1)
    assert max(abs(b) for b in fit_calibration(q, z).bias) < 0.3


def test_identity_and_round_trip():
    p, _ = biased_probs(n=10)
    np.testing.assert_allclose(Calibration().apply(p), p, atol=1e-6)
    cal = Calibration(temperature=2.0, bias=[0.1, -0.2, 0.1])
    assert Calibration.from_dict(json.loads(json.dumps(cal.as_dict()))) == cal
    assert Calibration.from_dict(None) is None


def test_out_of_fold_scores_only_scored_rows_of_unseen_groups():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 6)
    x = np.eye(3)[y] + rng.normal(0, 0.1, (18, 3))
    groups = np.array(["a"] * 6 + ["b"] * 6 + ["w"] * 6)
    scored = np.array([True] * 12 + [False] * 6)  # "w": written rows, training only
    probs, gold = oof_head_probs(x, x, np.zeros(18, bool), y, groups, scored, 1.0, 0, False)
    assert probs.shape == (12, 3) and list(gold) == list(y[:12])
    assert (probs.argmax(1) == gold).all()  # separable: every unseen row right


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "run"
    args = [f"data.train=[{{path: {DATA}}}]", f"output_dir={path}", "fewshot.adapt=none"]
    assert main(["train", "--config", str(CONFIG), *args, "fewshot.calibrate=true"]) == 0
    return path


def test_the_run_stores_its_calibration_and_the_engine_applies_it(calibrated_run):
    stored = json.loads((calibrated_run / "config.json").read_text())["stance_calibration"]
    cal = Calibration.from_dict(stored)
    assert cal is not None and any(b != 0 for b in cal.bias)
    predictor = StancePredictor(calibrated_run)
    assert predictor.calibration == cal
    texts = ["Troops are leaving.", "Officials doubt the pullback.", "Markets rose."]
    calibrated = predictor.classify(texts)
    predictor.calibration = None
    np.testing.assert_allclose(cal.apply(predictor.classify(texts)), calibrated, atol=1e-5)


def test_the_card_says_frozen_body_calibration_and_data(calibrated_run):
    card = (calibrated_run / "README.md").read_text()
    assert "frozen body" in card and "not fine-tuned" in card
    assert "Calibrated: label offsets" in card and "withdrawal.jsonl" in card
