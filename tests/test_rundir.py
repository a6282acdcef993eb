"""The run directory contract (stance.rundir.files): what config.json and the tokenizer carry."""

import json
import shutil

import numpy as np
import pytest
from conftest import tiny_config
from transformers import pipeline

from stance.config import DEFAULT_MAX_LENGTH
from stance.errors import ConfigError, ModelLoadError
from stance.inference.engine import StancePredictor
from stance.kinds.registry import get_kind
from stance.labels import LABELS
from stance.rundir.files import INCOMPLETE_MARKER, load_classifier, load_run, mark_incomplete
from stance.train import run_training

LONG = " ".join(["Columns of tanks were seen leaving the border region by rail at night."] * 8)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A tiny cross-encoder trained with a max length of 24 tokens."""
    cfg = tiny_config(tmp_path_factory.mktemp("run"), "train.epochs=1", "data.max_length=24")
    run_training(cfg)
    return cfg


def test_config_json_and_tokenizer_carry_the_trained_length_and_claim(short_run):
    run = short_run.run_dir
    config = json.loads((run / "config.json").read_text())
    assert config["stance_claim"] == short_run.data.claim
    assert config["stance_max_length"] == 24
    assert json.loads((run / "tokenizer_config.json").read_text())["model_max_length"] == 24
    info = load_run(run)
    assert (info.kind, info.claim, info.max_length) == ("cross-encoder", short_run.data.claim, 24)


def test_pipeline_on_a_run_directory_truncates_as_training_did(short_run):
    run, claim = str(short_run.run_dir), short_run.data.claim
    clf = pipeline("text-classification", model=run, device="cpu")
    assert len(clf.tokenizer(claim, LONG, truncation=True)["input_ids"]) == 24
    out = clf({"text": claim, "text_pair": LONG}, top_k=None, truncation=True)
    got = np.array([{o["label"]: o["score"] for o in out}[label] for label in LABELS])
    predictor = StancePredictor(run, fast=False)
    assert predictor.max_length == 24
    probs, truncated = predictor.classify_detailed([(claim, LONG)])
    assert truncated[0]
    np.testing.assert_allclose(got, probs[0], atol=1e-5)


def test_older_runs_read_their_length_from_config_yaml(short_run, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(short_run.run_dir, run)
    config = json.loads((run / "config.json").read_text())
    del config["stance_max_length"]
    (run / "config.json").write_text(json.dumps(config))
    assert load_run(run).max_length == 24
    (run / "config.yaml").unlink()  # a bare save_pretrained directory
    assert load_run(run).max_length == DEFAULT_MAX_LENGTH


def test_a_directory_without_a_claim_falls_back_to_the_default(tiny_model_dir, tmp_path):
    run = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, run)
    config = json.loads((run / "config.json").read_text())
    del config["stance_claim"]
    (run / "config.json").write_text(json.dumps(config))
    info = load_run(run)
    assert info.saved_claim is None and info.claim == tiny_config().data.claim


def test_an_unfinished_run_is_refused(short_run, tmp_path):
    run = tmp_path / "unfinished"
    shutil.copytree(short_run.run_dir, run)
    mark_incomplete(short_run, run)
    assert (run / INCOMPLETE_MARKER).is_file()
    with pytest.raises(ModelLoadError, match="did not finish"):
        load_run(run)


# What a run directory written before stance.kinds holds, read through the registry: the keys
# the reader uses are config.json's stance_kind (absent: cross-encoder), stance_claim and
# stance_max_length (absent: config.yaml's data.max_length).
OLD_LAYOUT_KEYS = {"stance_claim", "stance_max_length", "id2label", "label2id"}


def test_the_writer_still_writes_the_keys_older_readers_used(short_run):
    config = json.loads((short_run.run_dir / "config.json").read_text())
    assert set(config) >= OLD_LAYOUT_KEYS and "stance_kind" not in config  # as before kinds
    assert {"model.safetensors", "config.yaml", "metrics.json", "README.md"} <= {
        p.name for p in short_run.run_dir.iterdir()
    }


def test_an_old_cross_encoder_directory_loads_through_the_registry(short_run, tmp_path):
    """config.json without stance_kind and stance_max_length, config.yaml with model.kind."""
    run = tmp_path / "old"
    shutil.copytree(short_run.run_dir, run)
    config = json.loads((run / "config.json").read_text())
    config.pop("stance_kind", None), config.pop("stance_max_length")
    (run / "config.json").write_text(json.dumps(config))
    assert "kind: cross-encoder" in (run / "config.yaml").read_text()
    info = load_run(run)
    assert (info.kind, info.max_length) == ("cross-encoder", 24)
    model, _ = load_classifier(run)
    assert model.config.stance_claim == short_run.data.claim


def test_an_unknown_kind_is_a_clear_error(short_run, tmp_path):
    run = tmp_path / "future"
    shutil.copytree(short_run.run_dir, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"stance_kind": "bi-encoder"}))
    with pytest.raises(ModelLoadError, match="stance_kind 'bi-encoder'.*known: cross-encoder"):
        load_run(run)
    with pytest.raises(ConfigError, match="model.kind: expected cross-encoder or sentence"):
        get_kind("bi-encoder")


def test_a_sentence_directory_without_its_body_is_refused(short_run, tmp_path):
    run = tmp_path / "headless"
    shutil.copytree(short_run.run_dir, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"stance_kind": "sentence"}))
    with pytest.raises(ModelLoadError, match="body"):
        load_run(run)
