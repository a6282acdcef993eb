import json
import time

import pytest
from conftest import ROOT, SEEDS

from stance.cli import main
from stance.data.segment import (
    article_id_from_path,
    read_text,
    safe_id,
    sentence_records,
    split_sentences,
)
from stance.errors import InputError


def test_sentences_in_order_and_whitespace_normalised():
    text = "First  sentence here.\tSecond one, with   spaces!\n\nA headline without stop\nLast."
    assert split_sentences(text) == [
        "First sentence here.",
        "Second one, with spaces!",
        "A headline without stop",
        "Last.",
    ]


def test_every_character_of_the_seeds_is_kept():
    for path in SEEDS.glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        joined = "".join(s.replace(" ", "") for s in split_sentences(text))
        assert joined == "".join(text.split())


def test_quotes_and_abbreviations_do_not_split():
    text = "U.S. President Joe Biden said Washington had not verified it. NATO agreed."
    assert split_sentences(text) == [
        "U.S. President Joe Biden said Washington had not verified it.",
        "NATO agreed.",
    ]


def test_article_ids_from_seed_names_and_others():
    assert article_id_from_path("seeds/000_88a8283e57a9c995.txt") == "000"
    assert article_id_from_path("x/my-article.txt") == "my-article"
    assert article_id_from_path("x/../../etc.txt") == "etc"


@pytest.mark.parametrize("bad", ["../evil", "a/b", "..", "/abs", "", "a\\b"])
def test_safe_id_cannot_escape_a_directory(bad, tmp_path):
    sid = safe_id(bad)
    assert sid and "/" not in sid and "\\" not in sid and sid not in (".", "..")
    assert (tmp_path / sid).resolve().parent == tmp_path.resolve()


def test_records_have_the_documented_fields():
    recs = sentence_records("007", "One. Two.")
    assert recs == [
        {"id": "007-00", "article_id": "007", "sentence_index": 0, "text": "One."},
        {"id": "007-01", "article_id": "007", "sentence_index": 1, "text": "Two."},
    ]


def test_read_text_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02abc")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("ok\ncaf\xe9".encode("latin-1"))
    for path, message in [
        (empty, "empty article"),
        (binary, "binary"),
        (latin, "not valid UTF-8"),
        (tmp_path / "missing.txt", "no such file"),
    ]:
        with pytest.raises(InputError, match=message) as err:
            read_text(path)
        assert str(path) in str(err.value)
    with pytest.raises(InputError, match=r"latin.txt:2"):
        read_text(latin)


def test_bom_and_crlf_are_handled(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffOne sentence.\r\nTwo sentence.\r\n".encode())
    assert split_sentences(read_text(path)) == ["One sentence.", "Two sentence."]


def test_long_line_without_full_stops_is_fast():
    text = "word " * 200_000  # 1 MB, one line, no sentence end
    start = time.perf_counter()
    sentences = split_sentences(text)
    assert time.perf_counter() - start < 30
    assert "".join(sentences).replace(" ", "") == text.replace(" ", "")


def test_segment_cli_writes_all_seed_sentences(tmp_path):
    out = tmp_path / "sentences.jsonl"
    assert main(["segment", *map(str, sorted(SEEDS.glob("*.txt"))), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    labelled = [json.loads(line) for line in (ROOT / "data" / "withdrawal.jsonl").open()]
    # The annotated file is exactly the segmenter's output, labelled.
    assert [(r["id"], r["text"]) for r in rows] == [(r["id"], r["text"]) for r in labelled]
    assert {r["article_id"] for r in rows} == {"000", "003", "004"}


def test_segment_cli_writes_all_written_article_sentences(tmp_path):
    # The same check for the written articles of issue 22 (data/articles/w*.txt).
    out = tmp_path / "sentences.jsonl"
    files = sorted((ROOT / "data" / "articles").glob("w*.txt"))
    assert main(["segment", *map(str, files), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    labelled_file = ROOT / "data" / "withdrawal-articles.jsonl"
    labelled = [json.loads(line) for line in labelled_file.open(encoding="utf-8")]
    assert [(r["id"], r["text"]) for r in rows] == [(r["id"], r["text"]) for r in labelled]
    assert {r["article_id"] for r in rows} == {p.stem for p in files}


def test_segment_cli_keeps_going_after_a_bad_file(tmp_path, caplog):
    good = tmp_path / "good.txt"
    good.write_text("Fine. Also fine.")
    out = tmp_path / "s.jsonl"
    code = main(["segment", str(tmp_path / "nope.txt"), str(good), "--output", str(out)])
    assert code == 1
    assert "nope.txt" in caplog.text
    assert len(out.read_text().splitlines()) == 2


def test_read_article_takes_the_main_text_of_an_html_page(tmp_path):
    from stance.data.segment import read_article

    page = tmp_path / "page.HTML"
    page.write_text(
        "<html><head><script>var x = 1;</script></head><body><nav><a href='/'>Home</a></nav>"
        "<article><p>The convoy turned back at the border on Tuesday, officials said, after "
        "a long day of talks between the two delegations in the capital.</p>"
        "<p>Nobody could say whether it would return, and both sides kept their positions "
        "along the river through the night.</p></article></body></html>",
        encoding="utf-8",
    )
    text = read_article(page)
    assert "The convoy turned back" in text and "<" not in text and "var x" not in text
    with pytest.raises(InputError, match="over the limit"):
        read_article(page, max_bytes=100)
    page.write_bytes(b"\x00\x01binary")
    with pytest.raises(InputError, match="looks binary"):
        read_article(page)


@pytest.mark.parametrize("size", [1, 50, 700, 2500, 10**6])
def test_text_pieces_cut_where_sentences_are_cut(size: int) -> None:
    """Issue 26 item 3: a long article's parts give exactly the whole text's sentences."""
    from stance.data.segment import _MAX_CHUNK, text_pieces

    long_line = " ".join(["word"] * 1200) + ". End."  # one line over _MAX_CHUNK characters
    text = "\ufeffFirst line. Second one.\r\n\nThird\x00line.\n" + long_line + "\nLast."
    text += "\n" + "\n".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    pieces = list(text_pieces(text, size))
    assert "".join(pieces) == text.replace("\x00", " ").lstrip("\ufeff")
    assert [s for p in pieces for s in split_sentences(p)] == split_sentences(text)
    assert all(len(p) <= size + _MAX_CHUNK + 2 for p in pieces)
    if size >= len(text):
        assert pieces == [text.replace("\x00", " ").lstrip("\ufeff")]
    assert list(text_pieces("", 10)) == [""]


def test_segment_reads_inputs_as_predict_does(tmp_path):
    """Issue 26 item 4: a .jsonl batch is articles ({"id", "text"}), not sentences; a
    directory is its article files; nothing read means exit 3 and no output file."""
    batch = tmp_path / "batch.jsonl"
    lines = [{"id": "a1", "text": "One here. Two here."}, {"id": "a2", "text": "Three."}]
    batch.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    out = tmp_path / "s.jsonl"
    assert main(["segment", str(batch), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["text"]) for r in rows] == [
        ("a1-00", "One here."), ("a1-01", "Two here."), ("a2-00", "Three.")
    ]  # fmt: skip

    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "x.txt").write_text("Alpha. Beta.", encoding="utf-8")
    assert main(["segment", str(folder), "--output", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2

    empty, missing = tmp_path / "empty", tmp_path / "none.jsonl"
    empty.mkdir()
    assert main(["segment", str(empty), str(tmp_path / "nope.txt"), "-o", str(missing)]) == 3
    assert not missing.exists()


def test_segment_help_names_every_input_kind(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ".html" in help_text and ".jsonl" in help_text and "directories" in help_text


def test_refusals_name_the_option_and_the_encoding(tmp_path):
    """Issue 26 item 8: the size refusal names --max-article-bytes; a Latin-1 file names
    its likely encoding and how to convert it."""
    from stance.data.segment import read_text

    big = tmp_path / "big.txt"
    big.write_text("word " * 100)
    with pytest.raises(InputError, match="--max-article-bytes"):
        read_text(big, max_bytes=100)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\u00e9 au lait. Na\u00efve.".encode("latin-1"))
    with pytest.raises(InputError, match=r"cp1252 .*iconv -f cp1252 -t utf-8"):
        read_text(latin)
