import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import DATA, ROOT, tiny_config
from transformers import pipeline

import stance
from stance.cli import main
from stance.data.statements import load_statements, to_dataset
from stance.errors import ConfigError
from stance.kinds.backbones import load_base
from stance.labels import LABELS
from stance.rundir.files import load_classifier
from stance.train import run_training
from stance.training.checkpoints import COMPLETE_MARKER, last_checkpoint
from stance.training.loop import fit, weighted_loss
from stance.training.setup import class_weights

PACKAGE = Path(stance.__file__).parent

NINE = [
    ("Units are returning to their permanent bases after the drills.", "supports"),
    ("Trains carried the tanks back to their home garrisons.", "supports"),
    ("The ministry said the pullback has begun.", "supports"),
    ("NATO has seen no sign of any withdrawal.", "doubts"),
    ("More troops are on the way, officials warned.", "doubts"),
    ("It remains to be seen whether forces will leave.", "doubts"),
    ("Ukraine marked a day of national unity with flags.", "neutral"),
    ("Foreign ministers will meet in Munich this week.", "neutral"),
    ("Crimea is a peninsula on the Black Sea.", "neutral"),
]


def nine_rows():
    return to_dataset(
        [
            {
                "id": str(i),
                "group": str(i % 3),
                "claim": "Russia is withdrawing.",
                "text": t,
                "label": y,
                "weight": 1.0,
            }
            for i, (t, y) in enumerate(NINE)
        ]
    )


def test_class_weights_balance_and_ignore_absent():
    w = class_weights([0, 0, 0, 1], [1, 1, 1, 1])
    assert w[0] * 3 == pytest.approx(w[1] * 1)
    assert w[2] == 1.0  # absent class: left alone


def test_weighted_loss_matches_plain_cross_entropy_when_unweighted():
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert weighted_loss(logits, labels, torch.ones(5), torch.ones(3)) == pytest.approx(
        plain.item()
    )


def test_tiny_model_fits_nine_rows_and_loss_falls():
    ds = nine_rows()
    cfg = tiny_config(
        None,
        "train.epochs=60",
        "train.batch_size=9",
        "train.lr=1e-2",
        "train.class_weights=false",
        "train.seed=3",
    )
    torch.manual_seed(3)
    model, tokenizer = load_base(cfg.model, [ds[0]["claim"], *ds["text"]])
    result = fit(cfg, model, tokenizer, ds, dev_ds=ds)
    losses = [h["loss"] for h in result.state.history if "loss" in h]
    assert losses[-1] < losses[0] * 0.5
    assert result.dev_metrics["accuracy"] == 1.0


@pytest.mark.parametrize(
    "overrides", [("train.epochs=3",), ("train.epochs=3", "train.max_steps=4")]
)
def test_every_epoch_and_the_last_step_are_evaluated(overrides):
    ds = nine_rows()
    cfg = tiny_config(None, "train.batch_size=3", "train.patience=0", *overrides)
    torch.manual_seed(0)
    model, tokenizer = load_base(cfg.model, [ds[0]["claim"], *ds["text"]])
    result = fit(cfg, model, tokenizer, ds, dev_ds=ds)
    evaluated = [h["step"] for h in result.state.history if "dev_macro_f1" in h]
    # 3 batches per epoch: once per epoch, and the step limit's last step is a candidate too
    assert evaluated == ([3, 6, 9] if len(overrides) == 1 else [3, 4])


def run_tiny(tmp_path, *overrides):
    cfg = tiny_config(tmp_path, *overrides)
    return cfg, run_training(cfg)


def test_run_directory_contents_and_reload(tmp_path):
    cfg, metrics = run_tiny(tmp_path / "run")
    run = cfg.run_dir
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "config.yaml",
        "metrics.json",
        "README.md",
        "confusion_matrix.png",
        "training_curves.png",
    ):
        assert (run / name).is_file(), name
    assert not list(run.glob("*.bin"))
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["dev"]["macro_f1"] == metrics["dev"]["macro_f1"]
    card = (run / "README.md").read_text()
    assert "macro-F1" in card and "torch" in card and "sha256" in card

    model, tokenizer = load_classifier(run)
    assert [model.config.id2label[i] for i in range(3)] == list(LABELS)
    assert model.config.stance_claim == cfg.data.claim
    # save -> load gives identical logits (run_training saved the best weights it evaluated)
    ds = load_statements(DATA)
    enc = tokenizer([cfg.data.claim] * 4, ds["text"][:4], padding=True, return_tensors="pt")
    with torch.inference_mode():
        first = model(**enc).logits
        again = load_classifier(run)[0](**enc).logits
    assert torch.equal(first, again)

    clf = pipeline("text-classification", model=str(run), tokenizer=str(run), device="cpu")
    out = clf({"text": cfg.data.claim, "text_pair": "Units return to base."}, top_k=None)
    assert {o["label"] for o in out} == set(LABELS)


def test_same_config_and_seed_give_the_same_metrics(tmp_path):
    _, a = run_tiny(tmp_path / "a", "train.epochs=2")
    _, b = run_tiny(tmp_path / "b", "train.epochs=2")
    assert a["dev"] == b["dev"]
    assert [h for h in a["history"]] == [h for h in b["history"]]


class Killed(Exception):
    pass


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, monkeypatch):
    common = (
        "train.epochs=4",
        "train.checkpoint_every=3",
        "train.keep_checkpoints=10",
        "train.eval_every=4",
        "model.dropout=0.2",
    )
    _, full = run_tiny(tmp_path / "full", *common)

    import stance.training.loop as train_module  # where train_step looks weighted_loss up

    calls = {"n": 0}
    real_loss = train_module.weighted_loss

    def dying_loss(*args):
        calls["n"] += 1
        if calls["n"] == 8:  # dies inside step 8, after the checkpoint of step 6
            raise Killed
        return real_loss(*args)

    monkeypatch.setattr(train_module, "weighted_loss", dying_loss)
    with pytest.raises(Killed):
        run_tiny(tmp_path / "cut", *common)
    monkeypatch.setattr(train_module, "weighted_loss", real_loss)
    ckpts = sorted((tmp_path / "cut" / "checkpoints").glob("step-*"))
    assert [c.name for c in ckpts] == ["step-0000003", "step-0000006"]
    # A half-written checkpoint (no marker) is never taken for a complete one.
    shutil.copytree(ckpts[-1], tmp_path / "cut" / "checkpoints" / "step-0000009")
    (tmp_path / "cut" / "checkpoints" / "step-0000009" / COMPLETE_MARKER).unlink()
    assert last_checkpoint(tmp_path / "cut").name == "step-0000006"

    resumed = run_training(tiny_config(tmp_path / "cut", *common), resume=True)
    assert resumed["steps"] == full["steps"]
    assert resumed["dev"] == full["dev"]
    assert resumed["history"] == full["history"]
    a = load_classifier(tmp_path / "full")[0].state_dict()
    b = load_classifier(tmp_path / "cut")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_train_prints_metrics_and_rejects_bad_config(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--config",
                "configs/tiny.yaml",
                "--output-dir",
                str(tmp_path / "r"),
                "train.epochs=1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "macro-F1" in out and str(tmp_path / "r") in out
    assert main(["train", "--config", "configs/tiny.yaml", "train.bogus=1"]) == 2
    with pytest.raises(ConfigError):
        tiny_config(None, "train.bogus=1")


def test_cli_evaluate_json(tmp_path, capsys):
    run_tiny(tmp_path / "r", "train.epochs=1")
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "r"), "--data", str(DATA), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["macro_f1"] <= 1
    assert report["n"] == len(load_statements(DATA))


def test_evaluate_refuses_pickle_only_model_dir(tmp_path, caplog):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really")
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(DATA)]) == 2
    assert "refusing to unpickle" in caplog.text


def test_cli_split_writes_the_split_a_run_trains_on(tmp_path, capsys):
    from conftest import ROOT

    from stance.config import load_config
    from stance.data.training_rows import load_training_data

    overrides = [f"data.train=[{{path: {DATA}}}]", "data.split_seed=3"]
    assert (
        main(
            ["split", "--config", str(ROOT / "configs/tiny.yaml"), "-o", str(tmp_path), *overrides]
        )
        == 0
    )
    assert "dev:" in capsys.readouterr().out
    train, dev = (load_statements(tmp_path / f"{n}.jsonl") for n in ("train", "dev"))
    run_train, run_dev = load_training_data(load_config(ROOT / "configs/tiny.yaml", overrides))
    assert dev.to_list() == run_dev.to_list() and train.to_list() == run_train.to_list()
    assert not set(train["group"]) & set(dev["group"])


def test_loss_log_reads_the_same_floats_in_step_order():
    from stance.training.progress import LossLog

    log, history = LossLog(every=3), [{"step": 0, "dev_macro_f1": 0.5}]
    losses = [torch.tensor(x, dtype=torch.float32) for x in (0.1, 1 / 3, 2.5, 7.0)]
    due = [log.add(step, loss) for step, loss in enumerate(losses, 1)]
    assert due == [False, False, True, True]
    assert log.read_into(history) == losses[-1].item()
    assert log.read_into(history) is None  # nothing pending
    assert history[1:] == [{"step": i, "loss": x.item()} for i, x in enumerate(losses, 1)]


def test_training_steps_do_not_wait_for_the_device(monkeypatch):
    """Issue #13: no `.item()` per step (each one stalls a GPU); the history still holds
    every step's loss, in order, before the evaluation that follows it."""
    ds = nine_rows()
    cfg = tiny_config(None, "train.epochs=12", "train.batch_size=3", "train.seed=3")
    torch.manual_seed(3)
    model, tokenizer = load_base(cfg.model, [ds[0]["claim"], *ds["text"]])
    calls, item = [], torch.Tensor.item

    def counted(t: torch.Tensor):  # reads by the package (the DataLoader reads its seed)
        if Path(sys._getframe(1).f_code.co_filename).is_relative_to(PACKAGE):
            calls.append(1)
        return item(t)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    result = fit(cfg, model, tokenizer, ds, dev_ds=ds)
    steps = result.state.step
    assert steps == 36 and not calls
    history = result.state.history
    assert [h["step"] for h in history if "loss" in h] == list(range(1, steps + 1))
    for i, h in enumerate(history):  # an evaluation follows the loss of its own step
        if "dev_macro_f1" in h:
            assert history[i - 1] == {"step": h["step"], "loss": history[i - 1]["loss"]}


def test_failed_run_is_marked_and_refused_by_predict(tmp_path, monkeypatch, caplog):
    """A run that dies leaves no config.yaml to misread; predict refuses the directory."""
    # the cross-encoder kind's training run looks `fit` up in its own module
    import stance.kinds.cross_encoder_training as train_module

    run_dir = tmp_path / "run"
    run_tiny(run_dir, "train.epochs=1")
    assert not (run_dir / "INCOMPLETE").exists()

    def dying_fit(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(train_module, "fit", dying_fit)
    with pytest.raises(Killed):
        run_tiny(run_dir, "train.epochs=1", "data.max_length=40")
    assert (run_dir / "INCOMPLETE").is_file()
    assert "max_length: 40" not in (run_dir / "config.yaml").read_text()  # the old run's
    seed = ROOT / "seeds" / "000_88a8283e57a9c995.txt"
    code = main(["predict", "--model", str(run_dir), str(seed), "-o", str(tmp_path / "o.jsonl")])
    assert code == 2
    assert "training of this run did not finish" in caplog.text
    assert not (tmp_path / "o.jsonl").exists()


def test_new_head_from_the_base_is_one_plain_line(capfd, caplog):
    """No ANSI "LOAD REPORT" table about the classifier head a new run is expected to lack."""
    import logging

    from stance.config import ModelConfig

    with caplog.at_level(logging.INFO):
        load_base(ModelConfig())
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "\x1b[" not in err
    assert "LOAD REPORT" not in caplog.text
    lines = [r.getMessage() for r in caplog.records if "classifier head" in r.getMessage()]
    assert len(lines) == 1 and "new 3-label classifier head" in lines[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
