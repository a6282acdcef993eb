"""scripts/headline_results.py and stance.evaluation.headline: every run directory that
exists is scored and checked, a missing one is skipped with a warning and named in the
snippet, and with none there nothing is written."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from conftest import DATA, ROOT

from stance.evaluation.headline import CHECK_CLAIMS

sys.path.insert(0, str(ROOT / "scripts"))
import headline_results  # noqa: E402


def test_a_missing_run_directory_is_skipped_and_named(
    tiny_model_dir: Path, tmp_path: Path, caplog
) -> None:
    missing = tmp_path / "emergent-mpnet"
    snippet = tmp_path / "headline.md"
    argv = [str(tiny_model_dir), str(missing), "--test", str(DATA), "--check-data", str(DATA)]
    argv += ["--markdown", str(snippet)]
    with caplog.at_level(logging.WARNING):
        assert headline_results.main(argv) == 0
    assert any(str(missing) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    text = snippet.read_text(encoding="utf-8")
    assert text.startswith("**Emergent cross-encoders") and "produced by `" in text
    # the test file, then the seed sentences with the claim check
    model_rows = [line for line in text.splitlines() if line.startswith(f"| `{tiny_model_dir}`")]
    assert len(model_rows) == 2 + len(CHECK_CLAIMS)
    assert all(claim in text for claim in CHECK_CLAIMS)
    assert f"Not evaluated (no run directory when this ran): `{missing}`." in text


def test_nothing_is_written_when_no_run_directory_exists(tmp_path: Path) -> None:
    snippet = tmp_path / "headline.md"
    argv = [str(tmp_path / "a"), str(tmp_path / "b"), "--markdown", str(snippet)]
    assert headline_results.main(argv) == 1
    assert not snippet.exists()
