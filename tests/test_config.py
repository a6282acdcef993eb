import pytest
from conftest import ROOT

from stance.config import DataSource, RunConfig, dump_config, load_config
from stance.errors import ConfigError


def test_shipped_configs_load():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert isinstance(cfg, RunConfig)
        assert cfg.data.train and all(isinstance(s, DataSource) for s in cfg.data.train)


def test_dotted_overrides_are_typed():
    cfg = load_config(
        ROOT / "configs" / "tiny.yaml",
        ["train.lr=3e-5", "train.epochs=2", "data.dev=x.jsonl", "name=other"],
    )
    assert cfg.train.lr == 3e-5 and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 2.0
    assert cfg.data.dev == "x.jsonl"
    assert cfg.run_dir.as_posix() == "models/other"


def test_sources_as_strings_or_lists():
    cfg = load_config(None, ["data.train=a.jsonl"])
    assert cfg.data.train == [DataSource("a.jsonl", 1.0)]
    cfg = load_config(None, ["data.train=[{path: a.jsonl, weight: 2}, b.jsonl]"])
    assert cfg.data.train == [DataSource("a.jsonl", 2.0), DataSource("b.jsonl", 1.0)]


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(ROOT / "configs" / "withdrawal.yaml", ["train.lr=1e-4"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lrr=1"], "unknown config key 'train.lrr'; known keys under 'train'"),
        (["bogus=1"], "unknown config key 'bogus'"),
        (["train.lr=fast"], "train.lr: expected a number"),
        (["train.batch_size=1.5"], "train.batch_size: expected an integer"),
        (["train.class_weights=maybe"], "train.class_weights: expected true or false"),
        (["train.mixed_precision=fp8"], "train.mixed_precision"),
        (["train.batch_size=0"], "train.batch_size: must be at least 1"),
        (["data.train=[]"], "at least one training file"),
        (["train=3"], "train: expected a mapping"),
        (["train.lr"], "not of the form key=value"),
    ],
)
def test_config_errors_are_clear(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ROOT / "configs" / "tiny.yaml", overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(bad)
    bad.write_text("train:\n  epochs: 3\n  warmup: 0.1\n")
    with pytest.raises(ConfigError, match=f"{bad}: unknown config key 'train.warmup'"):
        load_config(bad)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrr=3e-5", "unknown config key 'train.lrr'"),
        ("train.lr=fast", "train.lr: expected a number"),
        ("train.lr.x=1", "is not a section"),
    ],
)
def test_override_errors_name_the_override_not_the_file(override, message):
    path = ROOT / "configs" / "withdrawal.yaml"
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path, [override])
    assert str(err.value).startswith(f"override {override!r}: ")
    assert str(path) not in str(err.value)


def test_empty_config_file_is_named(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match=f"{empty}: empty config file"):
        load_config(empty)
    mapping = tmp_path / "nodata.yaml"
    mapping.write_text("name: x\n")
    with pytest.raises(ConfigError, match=f"{mapping}: data.train: at least one"):
        load_config(mapping)


def test_cli_names_the_override(capsys, caplog):
    from stance import cli

    code = cli.main(["train", "--config", str(ROOT / "configs" / "tiny.yaml"), "train.lrr=3e-5"])
    assert code == 2
    assert "override 'train.lrr=3e-5': unknown config key 'train.lrr'" in caplog.text
    assert "tiny.yaml" not in caplog.text
