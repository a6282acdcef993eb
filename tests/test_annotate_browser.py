"""A real browser (headless Chromium) labels sentences by keyboard; the file holds them.

Needs the Debian packages chromium and chromium-driver (`.ci/run` installs them); without
them the test is skipped, and says so. Set STANCE_SCREENSHOT=docs/annotate.png to refresh the
README's screenshot from this run.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from test_annotate_session import CLAIM, ORACLE, make_session

from stance.annotate.server import create_app, make_server

CHROMIUM = Path(os.environ.get("STANCE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("STANCE_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,860",
)


def chrome(tmp_path: Path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(
            f"no Chromium for the browser test ({CHROMIUM} and {CHROMEDRIVER} not both "
            "found): apt-get install -y chromium chromium-driver"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach out
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture
def server(tmp_path):
    session = make_session(tmp_path / "labels.jsonl", retrain_every=3, random_share=0.2)
    app = create_app(session)
    httpd = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield session, f"http://127.0.0.1:{httpd.server_port}/", tmp_path / "labels.jsonl"
    httpd.shutdown()


def test_label_by_keyboard_in_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    session, url, path = server
    driver = chrome(tmp_path)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        text = lambda: driver.find_element(By.ID, "text").text  # noqa: E731
        shown_id = lambda: driver.find_element(By.ID, "meta").text.split()[0]  # noqa: E731
        saved = lambda: len(path.read_text().splitlines()) if path.exists() else 0  # noqa: E731
        wait.until(lambda d: text())
        assert driver.find_element(By.ID, "claim").text == CLAIM
        body = driver.find_element(By.TAG_NAME, "body")
        keys = {"supports": "s", "doubts": "d", "neutral": "n", "skip": "k"}
        shown = []
        for _ in range(7):
            shown.append(shown_id())  # texts repeat ("Advertisement"); ids do not
            before = saved()
            body.send_keys(keys[ORACLE[shown[-1]]])
            wait.until(lambda d, n=before: saved() == n + 1)
            wait.until(lambda d, s=shown[-1]: f"Saved {s}" in d.find_element(By.ID, "status").text)
        body.send_keys("u")  # the last label is taken back and its sentence shown again
        wait.until(lambda d: "Undone" in d.find_element(By.ID, "status").text)
        assert shown_id() == shown[-1]
        body.send_keys("1")  # 1 = supports
        wait.until(lambda d: f"Saved {shown[-1]}: supports" in d.find_element(By.ID, "status").text)
        session.wait_idle(30)
        wait.until(lambda d: "Model suggests" in d.find_element(By.ID, "suggestion").text)
        wait.until(lambda d: "Updating" not in d.find_element(By.ID, "model").text)
        screenshot = tmp_path / "annotate.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == shown
    expected = [ORACLE[i] for i in shown[:-1]] + ["supports"]
    assert [r.get("label", "skip" if r.get("skip") else None) for r in rows] == expected
    if os.environ.get("STANCE_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["STANCE_SCREENSHOT"])
