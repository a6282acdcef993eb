"""The annotate server: labels on disk before the answer, and only the page may write."""

from __future__ import annotations

import json
import threading

import pytest
from test_annotate_session import ORACLE, make_session

from stance.annotate.server import allowed_hosts, create_app

TOKEN = "test-token"
H = {"X-Stance-Token": TOKEN}
LABEL = {"json": {"id": "000-01", "label": "doubts"}}


@pytest.fixture
def served(tmp_path):
    session = make_session(tmp_path / "labels.jsonl")
    app = create_app(session, token=TOKEN, hosts={"localhost"})
    return session, app, tmp_path / "labels.jsonl"


def rows(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_page_embeds_the_token_and_loads_nothing_external(served):
    _, app, _ = served
    resp = app.test_client().get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and TOKEN in html
    assert "http://" not in html and "https://" not in html and "src=" not in html
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_labels_are_on_disk_when_the_answer_comes(served):
    _, app, path = served
    client = app.test_client()
    item = client.get("/api/state", headers=H).get_json()["item"]
    resp = client.post("/api/label", json={"id": item["id"], "label": "doubts"}, headers=H)
    assert resp.status_code == 200
    assert [(r["id"], r["label"]) for r in rows(path)] == [(item["id"], "doubts")]
    state = resp.get_json()
    assert state["last"] == {"id": item["id"], "label": "doubts"}
    assert state["item"]["id"] != item["id"] and state["progress"]["labelled"] == 1
    assert list(state["progress"]["counts"]) == ["supports", "doubts", "neutral", "skip"]


def test_skip_and_undo_through_the_api(served):
    _, app, path = served
    client = app.test_client()
    item = client.get("/api/state", headers=H).get_json()["item"]
    client.post("/api/label", json={"id": item["id"], "label": "skip"}, headers=H)
    assert rows(path)[0]["skip"] is True
    resp = client.post("/api/undo", json={}, headers=H)
    assert resp.status_code == 200 and resp.get_json()["item"]["id"] == item["id"]
    assert rows(path) == []
    again = client.post("/api/undo", json={}, headers=H)
    assert again.status_code == 409 and again.get_json()["error"] == "nothing to undo"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"id": "nope-00", "label": "doubts"}, 404),
        ({"id": "000-01", "label": "maybe"}, 400),
        ({"id": 7, "label": "doubts"}, 400),
        (["000-01", "doubts"], 400),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(served, body, status):
    _, app, path = served
    resp = app.test_client().post("/api/label", json=body, headers=H)
    assert resp.status_code == status and "error" in resp.get_json()
    assert rows(path) == []


@pytest.mark.parametrize(
    ("headers", "kwargs", "status"),
    [
        ({}, LABEL, 403),  # no token
        ({"X-Stance-Token": "guess"}, LABEL, 403),
        ({**H, "Origin": "http://evil.example"}, LABEL, 403),
        ({**H, "Sec-Fetch-Site": "cross-site"}, LABEL, 403),
        ({**H, "Host": "evil.example:8765"}, LABEL, 403),
        (H, {"data": "id=000-01&label=doubts"}, 415),  # a form post
        ({**H, "Content-Type": "text/plain"}, {"data": '{"id": "000-01", "label": "doubts"}'}, 415),
    ],
)
def test_requests_not_from_the_page_are_refused(served, headers, kwargs, status):
    _, app, path = served
    resp = app.test_client().post("/api/label", headers=headers, **kwargs)
    assert resp.status_code == status
    assert rows(path) == []
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_reads_need_the_token_and_the_right_host(served):
    _, app, _ = served
    client = app.test_client()
    assert client.get("/api/state").status_code == 403
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 403
    assert client.get("/api/state", headers={**H, "Origin": "http://localhost"}).status_code == 200


def test_a_concurrent_double_submit_writes_one_row(served):
    session, app, path = served
    item = session.state()["item"]
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def submit() -> None:
        client = app.test_client()
        barrier.wait()
        resp = client.post("/api/label", json={"id": item["id"], "label": "doubts"}, headers=H)
        codes.append(resp.status_code)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 7
    assert [r["id"] for r in rows(path)] == [item["id"]]


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1", 8765) == {
        "127.0.0.1:8765",
        "localhost:8765",
        "[::1]:8765",
    }
    assert allowed_hosts("192.168.1.5", 9000) == {"192.168.1.5:9000"}
    assert "[::1]:9000" in allowed_hosts("::1", 9000)


def test_every_oracle_label_round_trips(served):
    _, app, path = served
    client = app.test_client()
    for _ in range(10):
        item = client.get("/api/state", headers=H).get_json()["item"]
        client.post("/api/label", json={"id": item["id"], "label": ORACLE[item["id"]]}, headers=H)
    assert len(rows(path)) == 10


def test_the_withdrawal_rules_are_shown_only_for_the_withdrawal_claim(served, tmp_path):
    """Issue 26 item 6: another claim gets the general rules, not "footage of leaving"."""
    from stance.annotate.session import AnnotationSession
    from stance.annotate.store import LabelStore

    session, app, _ = served
    page = app.test_client().get("/").get_data(as_text=True)
    assert "Attributed speech counts" in page and "footage of leaving is supports" in page
    assert "{{GUIDE}}" not in page

    other = AnnotationSession(
        session.sentences, LabelStore(tmp_path / "other.jsonl", "Oil prices will rise in March.")
    )
    page = create_app(other, token=TOKEN).test_client().get("/", headers=H)
    html = page.get_data(as_text=True)
    assert "Attributed speech counts" in html and "Page furniture" in html
    assert "footage" not in html and "troop movement" not in html
    assert "no guide of its own" in html
