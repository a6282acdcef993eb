"""The docs cannot fall behind the CLI: their runnable console blocks run on the tiny models.

A console block preceded by `<!-- runnable -->` is run, each `$ ` line in turn, in a scratch
folder that links the repository's configs/, data/, seeds/ and scripts/, with SUBSTITUTIONS
applied (the tiny few-shot model stands in for `models/withdrawal`); every command must exit 0.
A block preceded by `<!-- runnable: parse -->` is too slow or needs data outside the clone
(mpnet, Emergent, a browser): each `stance` command is parsed by the CLI's own parser and its
config overrides checked against the config schema, and each `scripts/*.py` command's flags
must appear in its `--help`. Either way a command or flag that no longer exists fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from contextlib import redirect_stdout
from glob import glob
from io import StringIO
from pathlib import Path

import pytest

from stance.cli import build_parser, main
from stance.util.snippets import INCLUDE, sync_includes

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKED = re.compile(
    r"<!-- runnable(?:: (?P<mode>parse))? -->\s*\n```console[^\n]*\n(?P<body>.*?)\n```", re.S
)
LINKED = ("configs", "data", "seeds", "scripts")
# What the docs show -> what the test runs. `{tiny}` is the tiny few-shot run directory.
SUBSTITUTIONS = {
    "models/withdrawal": "{tiny}",
}


def commands(body: str) -> list[str]:
    """The `$ ` lines of a console block, with backslash continuations joined."""
    out: list[str] = []
    joining = False
    for line in body.splitlines():
        if joining:
            out[-1] = out[-1][:-1].rstrip() + " " + line.strip()
        elif line.startswith("$ "):
            out.append(line[2:].strip())
        joining = bool(out) and out[-1].endswith("\\")
    return out


def blocks() -> list[tuple[str, str, str]]:
    """(where, mode, command) for every command of every marked block in the docs."""
    found = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for m in MARKED.finditer(text):
            line = text[: m.start()].count("\n") + 1
            where = f"{path.relative_to(ROOT)}:{line}"
            found += [(where, m["mode"] or "run", c) for c in commands(m["body"])]
    return found


BLOCKS = blocks()


def stance_argv(command: str) -> list[str] | None:
    """The CLI arguments of a `stance` command (`scripts/train.py` is `stance train`)."""
    words = shlex.split(command)
    if words[0] in (".venv/bin/stance", "stance"):
        return words[1:]
    if words[:2] == [".venv/bin/python", "scripts/train.py"]:
        return ["train", *words[2:]]
    return None


def check_parses(command: str) -> None:
    argv = stance_argv(command)
    if argv is None:
        words = shlex.split(command)
        assert words[0] == ".venv/bin/python" and words[1].startswith("scripts/"), command
        helptext = subprocess.run(
            [sys.executable, words[1], "--help"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert flag in helptext, f"{words[1]} has no {flag}"
        return
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        raise AssertionError(f"the CLI rejects: {command}") from e
    if getattr(args, "config", None):
        from stance.config import load_config

        load_config(ROOT / args.config, list(getattr(args, "overrides", [])))


def substitute(command: str, tiny: Path) -> str:
    for shown, run in SUBSTITUTIONS.items():
        command = re.sub(rf"{re.escape(shown)}(?![\w-])", run.format(tiny=tiny), command)
    return command


def run_command(command: str, cwd: Path) -> None:
    """A `stance` command in this process (fast, and the fake embedder applies); a pipe's
    later stages and any other command in bash."""
    first, sep, rest = command.partition(" | ")
    argv = stance_argv(first)
    if argv is None:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True)
        assert done.returncode == 0, f"{command}: {done.stderr.decode()[-2000:]}"
        return
    # The shell would expand a glob (seeds/*.txt); this process does it itself.
    argv = [x for a in argv for x in (sorted(glob(a, root_dir=cwd)) if "*" in a else [a])]
    out = StringIO()
    with redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:  # --help
            code = e.code
    assert code == 0, f"{command} exited {code}"
    if sep:
        done = subprocess.run(["bash", "-c", rest], input=out.getvalue().encode(), cwd=cwd)
        assert done.returncode == 0, command


@pytest.fixture(scope="module")
def tiny_fewshot(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs-model") / "withdrawal"
    config = str(ROOT / "configs" / "tiny-fewshot.yaml")
    data = f"data.train=[{{path: {ROOT / 'data' / 'withdrawal.jsonl'}}}]"
    assert main(["train", "--config", config, data, f"output_dir={path}"]) == 0
    return path


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_docs_mark_runnable_blocks():
    modes = {mode for _, mode, _ in BLOCKS}
    assert modes == {"run", "parse"}, "no runnable block found: has the marker changed?"
    readme = [c for where, _, c in BLOCKS if where.startswith("README.md")]
    assert readme, "README.md has no runnable block"


@pytest.mark.parametrize(
    "where,command", [(w, c) for w, m, c in BLOCKS if m == "parse"], ids=lambda x: x[:60]
)
def test_documented_commands_parse(where, command):
    check_parses(command)


@pytest.mark.slow
def test_runnable_blocks_run_on_the_tiny_model(tiny_fewshot, scratch):
    for where, mode, command in BLOCKS:
        if mode == "run":
            try:
                run_command(substitute(command, tiny_fewshot), scratch)
            except AssertionError as e:
                raise AssertionError(f"{where}: {e}") from None


def test_a_removed_flag_fails_the_check():
    with pytest.raises(AssertionError, match="rejects"):
        check_parses(".venv/bin/stance predict --model m seeds/ --no-such-flag")
    with pytest.raises(AssertionError, match="has no --no-such-flag"):
        check_parses(".venv/bin/python scripts/data_stats.py --no-such-flag")
    from stance.errors import ConfigError

    with pytest.raises(ConfigError):
        check_parses(".venv/bin/stance cv --config configs/tiny.yaml train.no_such_key=1")


def test_commands_join_continuation_lines():
    body = "$ stance a \\\n    --b c\noutput line\n$ stance d"
    assert commands(body) == ["stance a --b c", "stance d"]


@pytest.mark.parametrize("name", ["README.md", "BENCHMARKS.md"])
def test_copies_of_snippets_are_current(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    assert INCLUDE.search(text), f"{name} includes no snippet"
    hint = f"run: .venv/bin/python -m stance.util.snippets {name}"
    assert sync_includes(text, ROOT) == text, hint


def test_mkdocs_build_is_strict_and_clean(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (make docs installs it)")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
