"""Domain-adaptive tuning (stance/kinds/domain.py) and its unlabelled news
(stance/data/unlabelled.py), on a made-up ../shared and a tiny body: offline, seconds."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import DATA, ROOT
from safetensors.torch import load_file

from stance.cli import main
from stance.config import RunConfig
from stance.data.unlabelled import news_sentences, news_texts
from stance.errors import ConfigError, InputError
from stance.evaluation.cvfolds import base_digest
from stance.kinds.domain import PROVENANCE, DomainArgs, adapt_body
from stance.kinds.sentence_model import load_body

EMERGENT_HEADER = ",claimHeadline,articleHeadline,articleHeadlineStance,articleId,claimId\n"
BODY = (
    "Officials said the talks would resume in Geneva next week after a short pause. "
    "Read more. "
    "Markets rose sharply in early trading on Tuesday as investors bought back risk."
)


def fake_shared(root, body: str = BODY):
    """A ../shared with the files news_texts reads: two FNC-1 bodies files, two Emergent."""
    fnc1, emergent = root / "data" / "fnc1", root / "data" / "emergent"
    fnc1.mkdir(parents=True), emergent.mkdir(parents=True)
    for name in ("train_bodies.csv", "competition_test_bodies.csv"):
        (fnc1 / name).write_text(f'Body ID,articleBody\n1,"{body}"\n', encoding="utf-8")
    for name in ("train", "test"):
        (emergent / f"url-versions-2015-06-14-clean-{name}.csv").write_text(
            EMERGENT_HEADER + f"0,A claim,A headline of six words here {name},for,a{name},c\n",
            encoding="utf-8",
        )
    return root


def test_news_sentences_are_distinct_sentences_of_bodies_and_headlines(tmp_path):
    shared = fake_shared(tmp_path)
    texts = news_texts(shared)
    assert texts.count("Read more.") == 2  # both bodies files are read
    drawn = news_sentences(shared, 0, seed=0)
    assert "Read more." not in drawn  # too short to be a sentence the model reads
    assert len(drawn) == len(set(drawn)) == 4  # the body's two sentences once, two headlines
    assert "A headline of six words here test" in drawn
    assert news_sentences(shared, 2, seed=0) == drawn[:2] == news_sentences(shared, 2, seed=0)


def test_bad_shared_file_names_file_and_line(tmp_path):
    shared = fake_shared(tmp_path)
    bodies = shared / "data" / "fnc1" / "competition_test_bodies.csv"
    bodies.write_text('Body ID,articleBody\n1,"fine body text"\n2\n', encoding="utf-8")
    with pytest.raises(InputError) as e:
        news_texts(shared)
    assert "competition_test_bodies.csv" in str(e.value) and "3" in str(e.value)
    with pytest.raises(InputError, match="train_bodies.csv"):
        news_texts(tmp_path / "nowhere")


def sentences() -> list[str]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    return [row["text"] for row in rows][:48]


def tiny_body(base: str = "tiny", seed: int = 42):
    cfg = RunConfig()
    cfg.model.base, cfg.train.seed = base, seed
    torch.manual_seed(seed)
    return load_body(cfg, sentences())


def test_adapt_body_tunes_above_the_frozen_layers_and_saves_a_base(tmp_path):
    args = DomainArgs(base="tiny", batch_size=8, lr=1e-3, freeze_layers=1)
    out = adapt_body(args, sentences(), tmp_path / "body")
    before = {k: v for k, v in tiny_body()[0].auto_model.state_dict().items()}
    after = load_file(out / "model.safetensors")
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert changed and all("layer.1." in k or "pooler" in k for k in changed)
    record = json.loads((out / PROVENANCE).read_text())
    assert record["sentences_used"] == 48 and record["freeze_layers"] == 1
    assert record["train_loss"] > 0
    body = tiny_body(str(out))  # a config can name it as model.base
    assert body.encode(["Troops are leaving."]).shape == (1, 32)
    assert not list(tmp_path.glob(".body.*"))  # the staging directory was renamed
    with pytest.raises(ConfigError, match="exists"):
        adapt_body(args, sentences(), out)
    with pytest.raises(ConfigError, match="2\\+"):
        adapt_body(args, sentences()[:1], tmp_path / "other")


def test_cv_caches_tell_adapted_bodies_apart(tmp_path):
    assert base_digest("mpnet") == []  # named bases keep the keys of earlier runs
    args = DomainArgs(base="tiny", batch_size=8, lr=1e-3)
    first = adapt_body(args, sentences(), tmp_path / "a")
    second = adapt_body(DomainArgs(base="tiny", batch_size=8, lr=2e-3), sentences(), tmp_path / "b")
    assert base_digest(str(first)) != base_digest(str(second))


def test_model_trained_on_an_adapted_body_predicts_a_one_sentence_article(tmp_path):
    body = adapt_body(DomainArgs(base="tiny", batch_size=8), sentences(), tmp_path / "body")
    run = tmp_path / "run"
    config = ROOT / "configs" / "tiny-fewshot.yaml"
    overrides = [f"data.train=[{{path: {DATA}}}]", f"output_dir={run}", f"model.base={body}"]
    assert main(["train", "--config", str(config), *overrides]) == 0
    assert "tuned by unsupervised SimCSE on 48 unlabelled" in (run / "README.md").read_text()
    article = tmp_path / "one.txt"
    article.write_text("Russia said it was pulling its troops back to their bases.\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model", str(run), str(article), "--output", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1


def test_script_help_runs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "adapt_body.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--freeze-layers" in done.stdout and "--shared" in done.stdout
