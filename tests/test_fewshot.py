"""The few-shot sentence kind on a tiny sentence-transformer built in memory (no network)."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA, ROOT, SEEDS

from stance.cli import main
from stance.config import load_config
from stance.data.statements import load_statements
from stance.errors import ConfigError, StanceError
from stance.inference.engine import StancePredictor
from stance.kinds.sentence import load_sentence_model, save_sentence_model
from stance.kinds.sentence_model import contrastive_pairs, predict_proba, train_sentence_model
from stance.labels import LABELS
from stance.rundir.files import load_run

CONFIG = ROOT / "configs" / "tiny-fewshot.yaml"


def tiny_sentence_config(tmp_path=None, *overrides: str):
    extra = [f"output_dir={tmp_path}"] if tmp_path is not None else []
    return load_config(CONFIG, [f"data.train=[{{path: {DATA}}}]", *extra, *overrides])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("fewshot") / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(CONFIG),
                f"data.train=[{{path: {DATA}}}]",
                f"output_dir={path}",
            ]
        )
        == 0
    )
    return path


def test_run_directory_is_self_describing_and_pickle_free(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "head.safetensors", "body", "config.yaml", "metrics.json"} <= names
    assert "README.md" in names
    assert (run_dir / "body" / "modules.json").is_file()
    assert not [p for p in run_dir.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["stance_kind"] == "sentence" and load_run(run_dir).kind == "sentence"
    assert set(config["id2label"].values()) == set(LABELS)
    assert config["stance_claim"] and config["stance_max_length"] == 64
    tokenizer_config = json.loads((run_dir / "body" / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == 64  # truncates as training did


def test_saved_and_reloaded_model_gives_identical_probabilities(tmp_path):
    cfg = tiny_sentence_config(None, "train.epochs=1")
    ds = load_statements(DATA)
    model = train_sentence_model(cfg, ds)
    texts = list(ds["text"][:12])
    before = predict_proba(model, texts)
    save_sentence_model(model, tmp_path / "m")
    after = predict_proba(load_sentence_model(tmp_path / "m"), texts)
    np.testing.assert_array_equal(before, after)
    assert before.shape == (12, len(LABELS))


def test_linear_probe_learns_the_training_rows():
    # adapt=none: the head is a logistic regression on frozen features; weak regularisation
    # must separate the training rows of a random tiny body nearly perfectly.
    cfg = tiny_sentence_config(
        None, "fewshot.adapt=none", "fewshot.head_c=1000", "model.tiny_hidden=64"
    )
    ds = load_statements(DATA)
    model = train_sentence_model(cfg, ds)
    pred = predict_proba(model, list(ds["text"])).argmax(-1)
    assert (pred == np.array(ds["label"])).mean() > 0.9


def test_evaluate_and_predict_give_the_same_labels(run_dir, tmp_path, capsys):
    # One inference path: `stance evaluate` and `stance predict` score through StancePredictor.
    predictor = StancePredictor(run_dir)
    ds = load_statements(DATA)
    probs = predictor.classify(list(ds["text"]))
    ref = predict_proba(load_sentence_model(run_dir), list(ds["text"]))
    assert (probs.argmax(-1) == ref.argmax(-1)).all()
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    assert main(["evaluate", "--model", str(run_dir), "--data", str(DATA), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    gold = np.array(ds["label"])
    assert report["accuracy"] == pytest.approx(float((probs.argmax(-1) == gold).mean()))
    # predict on the seed articles: every sentence, same label as classify on its text
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--model", str(run_dir), str(SEEDS), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    labels = predictor.classify([r["text"] for r in rows]).argmax(-1)
    assert [r["label"] for r in rows] == [LABELS[i] for i in labels]


def test_a_claim_other_than_the_trained_one_is_refused(run_dir, caplog):
    with pytest.raises(StanceError, match="one claim"):
        StancePredictor(run_dir, claim="Russia is sending more troops to Ukraine's borders.")
    predictor = StancePredictor(run_dir)
    with pytest.raises(StanceError, match="one claim"):
        predictor.classify([("Another claim entirely.", "Some statement.")])
    code = main(["evaluate", "--model", str(run_dir), "--data", str(DATA), "--claim", "Cats purr."])
    assert code == 2 and "one claim" in caplog.text


def test_the_trained_claim_in_other_case_or_punctuation_is_accepted(run_dir):
    """Issue 26 item 8: "... borders" (no final period, other case) is the trained claim."""
    claim = json.loads((run_dir / "config.json").read_text())["stance_claim"]
    predictor = StancePredictor(run_dir, claim="  " + claim.rstrip(".").upper() + " ")
    texts = list(load_statements(DATA)["text"])[:4]
    np.testing.assert_allclose(predictor.classify(texts), StancePredictor(run_dir).classify(texts))


def test_another_claim_is_refused_before_torch_loads(run_dir, tmp_path):
    """Issue 26 item 8: the refusal answers at once, not after the model loads."""
    import subprocess
    import sys

    script = (
        "import sys\nfrom stance import cli\nrc = cli.main(sys.argv[1:])\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('RESULT', rc, heavy, file=sys.stderr)\n"
    )
    argv = ["predict", "--model", str(run_dir), "--claim", "Cats purr.", str(DATA)]
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv, "-o", str(tmp_path / "o.jsonl")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "RESULT 2 []" in proc.stderr and "one claim" in proc.stderr, proc.stderr[-2000:]


def test_rows_with_several_claims_are_refused():
    from stance.data.statements import to_dataset

    rows = [
        {"id": str(i), "group": "g", "claim": c, "text": "t", "label": "neutral", "weight": 1.0}
        for i, c in enumerate(["A.", "B."])
    ]
    with pytest.raises(ConfigError, match="one claim"):
        train_sentence_model(tiny_sentence_config(), to_dataset(rows))


def test_int8_and_float32_agree_on_the_tiny_model(run_dir):
    ds = load_statements(DATA)
    fp32 = StancePredictor(run_dir).classify(list(ds["text"]))
    int8 = StancePredictor(run_dir, quantize="int8").classify(list(ds["text"]))
    assert (fp32.argmax(-1) == int8.argmax(-1)).mean() >= 0.9


def test_contrastive_pairs_are_balanced_and_labelled():
    labels = [0, 0, 1, 1, 2]
    pairs = contrastive_pairs([f"t{i}" for i in range(5)], labels, iterations=3, seed=0)
    label_of = {f"t{i}": y for i, y in enumerate(labels)}
    for a, b, score in zip(pairs["sentence1"], pairs["sentence2"], pairs["score"], strict=True):
        assert a != b and (score == 1.0) == (label_of[a] == label_of[b])
    assert pairs["score"].count(0.0) == 15  # every sentence has a negative partner


def test_setfit_step_runs_through_sentence_transformers_trainer():
    cfg = tiny_sentence_config(None, "fewshot.adapt=setfit", "fewshot.setfit_iterations=1")
    ds = load_statements(DATA)
    model = train_sentence_model(cfg, ds)
    assert predict_proba(model, ["A statement."]).shape == (1, 3)


def test_cv_runs_the_sentence_kind_and_reports_pooled_f1(tmp_path, capsys):
    report = tmp_path / "cv.json"
    args = [
        "cv",
        "--config",
        str(CONFIG),
        "--seeds",
        "2",
        "--json",
        str(report),
        f"data.train=[{{path: {DATA}}}]",
        "train.epochs=1",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pooled macro-F1" in out and "majority" in out
    data = json.loads(report.read_text())
    assert len(data["runs"]) == 6 and {r["fold"] for r in data["runs"]} == {"000", "003", "004"}
    assert 0 <= data["summary"]["pooled_macro_f1_mean"] <= 1


def test_unknown_kind_and_adapt_are_config_errors():
    with pytest.raises(ConfigError, match="model.kind"):
        tiny_sentence_config(None, "model.kind=bi-encoder")
    with pytest.raises(ConfigError, match="fewshot.adapt"):
        tiny_sentence_config(None, "fewshot.adapt=magic")


def test_lpft_changes_the_body_and_keeps_it_on_cpu():
    cfg = tiny_sentence_config(None, "train.epochs=2", "train.lr=1e-2")
    ds = load_statements(DATA)
    torch.manual_seed(0)
    frozen = train_sentence_model(tiny_sentence_config(None, "fewshot.adapt=none"), ds)
    tuned = train_sentence_model(cfg, ds)
    a = dict(frozen.body.named_parameters())
    b = dict(tuned.body.named_parameters())
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(p.device.type == "cpu" for p in tuned.parameters())


def test_article_context_is_the_same_in_training_evaluate_and_predict(tmp_path, capsys):
    # With a context weight, a sentence reads its article neighbours: the engine's logit
    # mixing (z + w * (mean z_nb - b)) must equal the head on u + w * mean(u_nb), and
    # `stance evaluate` (neighbours from the file) must agree with `stance predict` (from
    # the segmented article) on the seed sentences.
    from stance.data.segment import split_sentences
    from stance.kinds.sentence_model import rows_of

    cfg = tiny_sentence_config(None, "fewshot.adapt=none", "fewshot.context_weight=0.7")
    ds = load_statements(DATA)
    assert sum(bool(p) for p in ds["prev_text"]) > 50  # the seed rows know their neighbours
    model = train_sentence_model(cfg, ds)
    save_sentence_model(model, tmp_path / "m")
    texts, _, prevs, nexts = rows_of(ds)
    ref = predict_proba(model, texts, prevs, nexts)
    assert not np.allclose(ref, predict_proba(model, texts))  # the context changes answers
    predictor = StancePredictor(tmp_path / "m")
    pairs = [(predictor.claim, t) for t in texts]
    seen = []
    classify = predictor.classify_detailed
    predictor.classify_detailed = lambda items, *a, **k: (
        seen.append(len(items)) or classify(items, *a, **k)
    )
    np.testing.assert_allclose(predictor.classify_rows(pairs, prevs, nexts), ref, atol=1e-5)
    # each text once: the rows, plus the neighbours that are no row (the skip rows)
    assert seen == [len(texts) + len({t for t in prevs + nexts if t} - set(texts))]
    article = (SEEDS / "004_65dc6e3bfb5d239e.txt").read_text(encoding="utf-8")
    sents = split_sentences(article)
    got = [p.probs for p in predictor.predict([article])]
    want = predict_proba(model, sents, ["", *sents[:-1]], [*sents[1:], ""])
    np.testing.assert_allclose([[g[k] for k in LABELS] for g in got], want, atol=1e-5)


def test_cli_train_reports_a_few_shot_run_and_its_dev_file(tmp_path, capsys):
    args = ["train", "--config", str(CONFIG), f"data.train=[{{path: {DATA}}}]"]
    args += [f"output_dir={tmp_path / 'r'}", f"data.dev={DATA}", "fewshot.adapt=none"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "few-shot model (tiny, adapt none): trained on 63 statements" in out
    assert "macro-F1" in out  # the dev file's metrics
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["dev"]["n"] == 63
    assert not (tmp_path / "r" / "INCOMPLETE").exists()


def test_bad_few_shot_settings_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="context_weight"):
        tiny_sentence_config(None, "fewshot.context_weight=-1")
    with pytest.raises(ConfigError, match="head_c"):
        tiny_sentence_config(None, "fewshot.head_c=0")
    # stance cv needs some file to score; training-only files alone are refused, nothing run
    only_extra = f"data.train=[{{path: {DATA}, cv_score: false}}]"
    assert main(["cv", "--config", str(CONFIG), only_extra]) == 2


def test_hard_pairs_set_doubts_only_against_neutral_and_supports():
    from stance.labels import LABEL2ID

    sup, dbt, neu = LABEL2ID["supports"], LABEL2ID["doubts"], LABEL2ID["neutral"]
    labels = [sup, sup, dbt, dbt, neu, neu]
    pairs = contrastive_pairs([f"t{i}" for i in range(6)], labels, 4, seed=0, hard=True)
    label_of = {f"t{i}": y for i, y in enumerate(labels)}
    negatives = {
        frozenset((label_of[a], label_of[b]))
        for a, b, s in zip(pairs["sentence1"], pairs["sentence2"], pairs["score"], strict=True)
        if s == 0.0
    }
    assert negatives == {frozenset((sup, dbt)), frozenset((neu, dbt))}  # never sup vs neutral
    assert pairs["score"].count(0.0) == 4 * 6  # still one negative per sentence and iteration


def test_card_recipe_says_which_layers_train():
    from stance.kinds.sentence import _recipe

    full = tiny_sentence_config(None, "fewshot.freeze_layers=0", "fewshot.cache_frozen=true")
    assert "every layer tuned" in _recipe(full) and "run once" not in _recipe(full)
    top = tiny_sentence_config(None, "fewshot.freeze_layers=1", "fewshot.cache_frozen=true")
    assert "the lowest 1 layers frozen (run once per text" in _recipe(top)
