"""`stance annotate` end to end on a real socket (fake embedder), and its input errors."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from annotate_fakes import KeywordEmbedder
from conftest import SEEDS

from stance.annotate import server as server_module
from stance.cli import main
from stance.data.statements import read_statements
from stance.predict.run import iter_inputs

CLAIM = "Russia is withdrawing its troops from near Ukraine's borders."


def serve_in_thread(monkeypatch, argv: list[str]):
    """Run `stance annotate` in a thread; returns (server, thread, result dict)."""
    monkeypatch.setattr("stance.annotate.learner.MiniLMEmbedder", KeywordEmbedder)
    started = threading.Event()
    holder: dict = {}
    real = server_module.make_server

    def recording(app, host, port):
        holder["server"] = real(app, host, port)
        started.set()
        return holder["server"]

    monkeypatch.setattr(server_module, "make_server", recording)
    thread = threading.Thread(target=lambda: holder.setdefault("rc", main(argv)))
    thread.start()
    assert started.wait(60), "the server did not start"
    return holder["server"], thread, holder


def request(url: str, token: str | None = None, body: dict | None = None, origin: str = ""):
    headers = {"X-Stance-Token": token} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers |= {"Content-Type": "application/json", "Origin": origin}
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read().decode()


def test_annotate_serves_labels_and_stops(tmp_path, monkeypatch, capsys):
    out = tmp_path / "labels.jsonl"
    argv = ["annotate", str(SEEDS), "--claim", CLAIM, "--output", str(out), "--port", "0"]
    server, thread, holder = serve_in_thread(monkeypatch, argv)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        _, page = request(base + "/")
        token = re.search(r'name="stance-token" content="([^"]+)"', page).group(1)
        _, state = request(base + "/api/state", token)
        item = json.loads(state)["item"]
        status, _ = request(
            base + "/api/label", token, {"id": item["id"], "label": "neutral"}, origin=base
        )
        assert status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:  # another page's origin
            request(base + "/api/undo", token, {}, origin="http://evil.example")
        assert refused.value.code == 403
    finally:
        server.shutdown()
        thread.join(30)
    assert holder["rc"] == 0
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [item["id"]]
    printed = capsys.readouterr().out
    assert f"open {base}/" in printed and "74 sentences of 3 articles" in printed


def test_suggestions_from_a_run_directory(tmp_path, monkeypatch, tiny_model_dir):
    out = tmp_path / "labels.jsonl"
    argv = ["annotate", str(SEEDS), "--claim", CLAIM, "-o", str(out), "--port", "0"]
    server, thread, holder = serve_in_thread(monkeypatch, [*argv, "--model", str(tiny_model_dir)])
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        _, page = request(base + "/")
        token = re.search(r'name="stance-token" content="([^"]+)"', page).group(1)
        for _ in range(300):  # the model scores every sentence in the background
            state = json.loads(request(base + "/api/state", token)[1])
            if state["model"]["source"]:
                break
            threading.Event().wait(0.1)
        assert state["model"]["source"] == f"model {tiny_model_dir}"
        assert set(state["item"]["suggestion"]["probs"]) == {"supports", "doubts", "neutral"}
    finally:
        server.shutdown()
        thread.join(30)
    assert holder["rc"] == 0


def test_a_bad_input_is_reported_as_predict_reports_it(tmp_path, monkeypatch, caplog):
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x00\x01 not text")
    expected = [str(f.error) for f in iter_inputs([str(binary)])]
    out = tmp_path / "labels.jsonl"
    good = str(next(SEEDS.glob("000_*.txt")))
    argv = ["annotate", good, str(binary), "--claim", CLAIM, "-o", str(out), "--port", "0"]
    server, thread, holder = serve_in_thread(monkeypatch, argv)
    server.shutdown()
    thread.join(30)
    assert holder["rc"] == 1  # the others were served; the exit code says one failed
    assert expected[0] in caplog.text and "looks binary" in expected[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "no such file"),
        (["{seeds}", "-o", "labels.csv"], "must end in .jsonl"),
        (["{seeds}", "--host", "0.0.0.0"], "bind to one address"),
        (["{seeds}", "--claim", "  "], "--claim is empty"),
    ],
)
def test_unusable_arguments_fail_before_serving(tmp_path, monkeypatch, caplog, args, message):
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{seeds}", str(SEEDS)) for a in args]
    # Options given later win, so each case overrides the defaults in front of it.
    assert main(["annotate", "--claim", CLAIM, "-o", "labels.jsonl", *args]) == 2
    assert message in caplog.text


def test_a_busy_port_or_a_bad_model_is_refused_before_the_sentences_are_read(
    tmp_path, monkeypatch, caplog
):
    """Issue 26 item 8: refusals come before the slow part (reading, embedding, loading)."""
    import socket

    import stance.annotate.sentences as sentences_module

    def too_late(*a, **k):
        raise AssertionError("the sentences were read before the refusal")

    monkeypatch.setattr(sentences_module, "read_sentences", too_late)
    monkeypatch.chdir(tmp_path)
    base = ["annotate", str(SEEDS), "--claim", CLAIM, "-o", "labels.jsonl"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main([*base, "--port", port]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
    assert main([*base, "--port", "0", "--model", str(tmp_path / "nope")]) == 2
    assert "nope: model directory not" in caplog.text


# `stance annotate` in its own process, with the fake embedder (no MiniLM in tests).
CHILD = (
    "import sys; sys.path.insert(0, {tests!r}); import annotate_fakes, stance.annotate.learner "
    "as learner; learner.MiniLMEmbedder = annotate_fakes.KeywordEmbedder; "
    "from stance.cli import main; sys.exit(main(sys.argv[1:]))"
)


def start_child(out: Path, log: Path) -> tuple[subprocess.Popen, str]:
    argv = ["annotate", str(SEEDS), "--claim", CLAIM, "-o", str(out), "--port", "0"]
    code = CHILD.format(tests=str(Path(__file__).parent))
    with log.open("a") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=err, text=True
        )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        if line.startswith("open "):
            return proc, line.split()[1].rstrip("/")


def label_over_http(base: str, n: int) -> list[str]:
    _, page = request(base + "/")
    token = re.search(r'name="stance-token" content="([^"]+)"', page).group(1)
    ids = []
    for _ in range(n):
        item = json.loads(request(base + "/api/state", token)[1])["item"]
        request(base + "/api/label", token, {"id": item["id"], "label": "doubts"}, origin=base)
        ids.append(item["id"])
    return ids


@pytest.mark.slow
def test_a_killed_server_loses_no_label_and_resumes(tmp_path):
    out, log = tmp_path / "labels.jsonl", tmp_path / "stderr.log"
    proc, base = start_child(out, log)
    try:
        first = label_over_http(base, 12)
    finally:
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait(30)
    assert [r["id"] for r in read_statements(out).rows] == first
    proc, base = start_child(out, log)
    try:
        _, page = request(base + "/")
        token = re.search(r'name="stance-token" content="([^"]+)"', page).group(1)
        state = json.loads(request(base + "/api/state", token)[1])
        assert state["progress"]["left"] == 74 - 12 and state["item"]["id"] not in first
        second = label_over_http(base, 3)
    finally:
        proc.terminate()
        assert proc.wait(60) != 0  # SIGTERM ends it like Ctrl-C would
    assert [r["id"] for r in read_statements(out).rows] == first + second
    assert "resuming" in log.read_text()
