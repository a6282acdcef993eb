"""The labels file: guide format, read by `stance train`, resumed, undone, torn lines dropped."""

from __future__ import annotations

import json
import logging

import pytest

from stance.annotate.sentences import Sentence
from stance.annotate.store import LabelStore, make_row
from stance.data.statements import read_statements
from stance.errors import InputError, StanceError

CLAIM = "The bridge is closed."
S = [Sentence(f"a-{i:02d}", "a", i, f"Sentence number {i}.") for i in range(4)]


def test_rows_are_the_guide_format_and_train_reads_them(tmp_path):
    store = LabelStore(tmp_path / "labels.jsonl", CLAIM)
    store.add(make_row(S[0], CLAIM, "supports"))
    store.add(make_row(S[1], CLAIM, "skip"))
    store.add(make_row(S[2], CLAIM, "doubts"))
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert rows[0] == {
        "id": "a-00",
        "article_id": "a",
        "sentence_index": 0,
        "text": "Sentence number 0.",
        "claim": CLAIM,
        "label": "supports",
    }
    assert rows[1]["skip"] is True and "label" not in rows[1]
    statements = read_statements(tmp_path / "labels.jsonl")
    assert [r["label"] for r in statements.rows] == ["supports", "doubts"]
    assert statements.skipped == 1 and statements.rows[0]["claim"] == CLAIM


def test_resume_keeps_labelling_order_and_undo_removes_the_last(tmp_path):
    path = tmp_path / "labels.jsonl"
    store = LabelStore(path, CLAIM)
    for s, label in zip(S[:3], ("neutral", "doubts", "supports"), strict=True):
        store.add(make_row(s, CLAIM, label))
    again = LabelStore(path, CLAIM)
    assert [r["id"] for r in again.rows] == ["a-00", "a-01", "a-02"]
    assert again.pop()["id"] == "a-02"
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a-00", "a-01"]
    assert "a-02" not in again and "a-01" in again
    with pytest.raises(StanceError, match="labelled already"):
        again.add(make_row(S[0], CLAIM, "doubts"))


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "labels.jsonl"
    store = LabelStore(path, CLAIM)
    store.add(make_row(S[0], CLAIM, "doubts"))
    with path.open("ab") as f:
        f.write(json.dumps(make_row(S[1], CLAIM, "supports")).encode()[:25])  # killed mid-write
    with caplog.at_level(logging.WARNING):
        resumed = LabelStore(path, CLAIM)
    assert [r["id"] for r in resumed.rows] == ["a-00"]
    assert "torn last line" in caplog.text
    resumed.add(make_row(S[1], CLAIM, "supports"))  # the next save leaves a clean file
    assert len(read_statements(path).rows) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a-00", "text": "x", "claim": "C", "label": "supports"}\n', "another claim"),
        ('{"id": "a-00", "text": "x", "label": "maybe"}\n', "label 'maybe'"),
        ('{"id": "a-00", "text": "x", "label": "doubts"}\n' * 2, "duplicate id"),
        ('{"id": "a-00", "te\n{"id": "a-01", "text": "x", "label": "doubts"}\n', "invalid JSON"),
    ],
)
def test_a_bad_labels_file_names_its_line(tmp_path, content, message):
    path = tmp_path / "labels.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as e:
        LabelStore(path, CLAIM)
    assert f"{path}:" in str(e.value)


def test_a_failed_write_takes_no_label(tmp_path, monkeypatch):
    store = LabelStore(tmp_path / "labels.jsonl", CLAIM)
    store.add(make_row(S[0], CLAIM, "doubts"))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stance.annotate.store.atomic_open", full_disk)
    with pytest.raises(OSError):
        store.add(make_row(S[1], CLAIM, "doubts"))
    assert "a-01" not in store and len(store) == 1


def test_a_failed_write_is_a_clear_refusal_in_the_session(tmp_path, monkeypatch):
    from stance.annotate.session import AnnotationSession, SessionError

    session = AnnotationSession(S, LabelStore(tmp_path / "labels.jsonl", CLAIM))
    item = session.state()["item"]

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stance.annotate.store.atomic_open", full_disk)
    with pytest.raises(SessionError, match="could not save") as e:
        session.label(item["id"], "doubts")
    assert e.value.status == 503
    assert session.state()["item"]["id"] == item["id"]  # still asked
