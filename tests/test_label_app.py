"""`label`: the real server (a subprocess), its token, durable labels, two tabs, and a real browser.

The browser tests drive Debian's Chromium headless through selenium, pointed at /usr/bin/chromium and
/usr/bin/chromedriver (no browser download); without them they are skipped, with the reason in
pytest's summary. ``REVIEW_TRANSFER_SCREENSHOT=docs/label-page.png`` saves the page's screenshot there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import write_reviews_csv, write_star_sheet

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
try:
    import selenium  # noqa: F401

    NO_BROWSER = None if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists() else (
        f"no {CHROMIUM} / {CHROMEDRIVER}: apt-get install -y chromium chromium-driver (.ci/run does)")
except ImportError:
    NO_BROWSER = "selenium is not installed: pip install -e '.[test]'"
browser = pytest.mark.skipif(NO_BROWSER is not None, reason=f"browser tests skipped: {NO_BROWSER}")

SCRIPT = '<script>window.pwned = 1</script>I <b>loved</b> it & so will you <img src=x onerror="window.pwned=2">'
LONG = " ".join(["A sprawling, patient film whose every scene earns its place."] * 60) + " In the end, wonderful."


class Server:
    """``review-transfer label`` in a subprocess; ``url`` is what it printed."""

    def __init__(self, source: str, labels: Path, encoder: str, cache: Path, strategy: str = "hybrid"):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "label", source, "--labels", str(labels), "--encoder", encoder,
             "--cache-dir", str(cache), "--strategy", strategy],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).parent.parent)
        self.output = []
        for line in self.proc.stdout:
            self.output.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
            if match:
                self.base, self.token = match.groups()
                self.url = match.group(0)
                break
        else:
            raise AssertionError("server did not start:\n" + "".join(self.output))

    def call(self, path: str, body: dict | None = None, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json", "X-Token": self.token if token is None else token}
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(urllib.request.Request(self.base + path, data, headers), timeout=60) as r:
            return json.loads(r.read())

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: nothing gets to flush or clean up
        self.proc.wait()
        self.proc.stdout.close()


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def source(tmp_path_factory, rt) -> str:
    """300 real RT reviews."""
    return write_reviews_csv(tmp_path_factory.mktemp("label") / "reviews.csv", rt, range(300))


def test_label_takes_a_sheets_ratings_into_its_file_once(tmp_path, rt, small_glove):
    """--take-labels on a sheet rated on 12 of 40 rows (one a 3, left out): the 11 others go into the labels file
    once (a restart, reading it beside --positive 4,5, adds none), are never proposed, and the sheet is untouched."""
    from pipeline.active.label_app.session import LabelJob, open_session

    idx = [int(i) for i in np.random.default_rng(0).permutation(len(rt))[:40]]  # both classes among the rated
    sheet = write_star_sheet(tmp_path / "shop.csv", rt, idx, n_rated=12)
    before = Path(sheet).read_bytes()
    labels = tmp_path / "labels.jsonl"
    options = {"text_col": "review", "label_col": "stars", "positive": "4,5", "negative": "1,2"}
    job = LabelJob(sheet, str(labels), small_glove, "hybrid", cache_dir=tmp_path / "cache", source_options=options,
                   take_labels=True)
    lines: list[str] = []
    session = open_session(job, echo=lines.append)
    assert any("took 11 labels from its column 'stars'" in line and str(labels) in line for line in lines), lines
    want = {rt.texts[i]: "positive" if rt.labels[i] else "negative" for i in idx[1:12]}
    assert {r["text"]: r["label"] for r in _records(labels)} == want
    assert session.n_source == 40 and sum(session.counts().values()) == 11
    shown = {session.view(c)["item"]["text"] for c in "abcdefgh"}  # eight tabs: eight texts, none of them taken
    assert len(shown) == 8 and not shown & set(want)
    lines.clear()
    again = open_session(job, echo=lines.append)
    assert len(_records(labels)) == 11 and again.counts() == session.counts()
    assert any("took 0 labels" in line and "11 of its labelled texts are labelled in --labels already" in line
               for line in lines), lines
    assert Path(sheet).read_bytes() == before


def test_token_required_and_two_tabs_lose_and_duplicate_nothing(tmp_path, source, small_glove):
    labels = tmp_path / "labels.jsonl"
    server = Server(source, labels, small_glove, tmp_path / "cache")
    try:
        for token in ("", "wrong"):
            with pytest.raises(urllib.error.HTTPError, match="403"):
                server.call("/api/state?client=a", token=token)
        shown: dict[str, list[int]] = {"a": [], "b": []}
        errors = []

        def tab(client: str, choice: str) -> None:
            try:
                state = server.call(f"/api/state?client={client}")
                for _ in range(12):
                    shown[client].append(state["item"]["row"])
                    state = server.call("/api/answer", {"client": client, "row": state["item"]["row"], "choice": choice})
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=tab, args=(c, ch)) for c, ch in (("a", "positive"), ("b", "negative"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert not set(shown["a"]) & set(shown["b"])  # never the same review in both tabs
        records = _records(labels)
        assert len(records) == 24 and len({r["text"] for r in records}) == 24
        assert sorted(r["label"] for r in records) == ["negative"] * 12 + ["positive"] * 12
        from pipeline.data.dataset import load

        as_source = load(str(labels))  # FILE is a normal SOURCE for fit and compare
        assert len(as_source) == 24 and as_source.labels.sum() == 12 and as_source.label_names == ("negative", "positive")
        # an answer for a review already answered (a stale tab) is not written twice
        state = server.call("/api/answer", {"client": "c", "row": shown["a"][0], "choice": "negative"})
        assert "not written again" in state["note"] and len(_records(labels)) == 24
        assert state["counts"] == {"negative": 12, "positive": 12} and state["history"][-1]["n"] == 24
        # SIGTERM (a service manager stopping it) while a tab answers: the process ends at once, killed by that
        # signal, each label it wrote whole (every line parses) and none twice
        shown["d"], errors[:] = [], []
        answering = threading.Thread(target=tab, args=("d", "positive"))
        answering.start()
        while len(_records(labels)) < 26 and answering.is_alive():
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == -signal.SIGTERM
        answering.join()
        records = _records(labels)
        assert len(records) >= 26 and len({r["text"] for r in records}) == len(records)
        assert errors and all(isinstance(e, (urllib.error.URLError, ConnectionError)) for e in errors)  # no answer
    finally:
        server.kill()


def _chrome(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1200,820"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _wait_for(driver, condition: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(f"return {condition}"))


@browser
@pytest.mark.slow
def test_browser_label_by_keyboard_undo_kill_restart(tmp_path, source, small_glove):
    from selenium.webdriver.common.by import By

    labels = tmp_path / "labels.jsonl"
    server = Server(source, labels, small_glove, tmp_path / "cache")
    driver = _chrome(tmp_path / "profile")
    try:
        driver.get(server.url)
        _wait_for(driver, "document.getElementById('review').dataset.row !== undefined")
        pressed = []
        for i in range(10):
            text = driver.find_element(By.ID, "review").text
            key = "p" if i % 3 else "n"
            driver.find_element(By.TAG_NAME, "body").send_keys(key)
            _wait_for(driver, f"document.body.dataset.labelled === '{i + 1}'")
            pressed.append((text, "positive" if key == "p" else "negative"))
        assert [(r["text"], r["label"]) for r in _records(labels)] == pressed  # on disk before the page moved on
        _wait_for(driver, "document.getElementById('curve').querySelector('polyline') !== null")
        driver.find_element(By.TAG_NAME, "body").send_keys("u")
        _wait_for(driver, "document.body.dataset.labelled === '9'")
        assert driver.find_element(By.ID, "review").text == pressed[-1][0]  # the undone review is shown again
        assert driver.find_element(By.ID, "estimate").text.endswith("on 9 labels, 3-fold") or "9 labels" in \
            driver.find_element(By.ID, "estimate").text
        if os.environ.get("REVIEW_TRANSFER_SCREENSHOT"):
            driver.save_screenshot(os.environ["REVIEW_TRANSFER_SCREENSHOT"])
        server.kill()
        assert [(r["text"], r["label"]) for r in _records(labels)] == pressed[:9]

        server = Server(source, labels, small_glove, tmp_path / "cache")
        assert "labels so far in" in "".join(server.output) and "3 negative, 6 positive" in "".join(server.output)
        driver.get(server.url)
        _wait_for(driver, "document.body.dataset.labelled === '9'")
        assert driver.find_element(By.ID, "review").text not in {t for t, _ in pressed[:9]}
        driver.find_element(By.ID, "negative").click()
        _wait_for(driver, "document.body.dataset.labelled === '10'")
        assert len(_records(labels)) == 10 and len({r["text"] for r in _records(labels)}) == 10
    finally:
        driver.quit()
        server.kill()


@browser
@pytest.mark.slow
def test_browser_shows_markup_as_text_and_long_reviews_whole(tmp_path, small_glove):
    from selenium.webdriver.common.by import By

    path = tmp_path / "markup.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in (SCRIPT, LONG, "Plain and dull.")), encoding="utf-8")
    labels = tmp_path / "labels.jsonl"
    server = Server(str(path), labels, small_glove, tmp_path / "cache", strategy="random")
    driver = _chrome(tmp_path / "profile")
    try:
        driver.get(server.url)
        seen = set()
        for i in range(3):
            _wait_for(driver, f"document.body.dataset.labelled === '{i}' && document.getElementById('review').dataset.row !== undefined")
            review = driver.find_element(By.ID, "review")
            text = driver.execute_script("return arguments[0].textContent", review)
            assert text in (SCRIPT, LONG, "Plain and dull.")
            assert driver.execute_script("return arguments[0].children.length", review) == 0  # no element was parsed
            if text == LONG:  # wrapped to the card's width and scrollable, not cut or overflowing sideways
                assert driver.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", review)
                assert driver.execute_script("return getComputedStyle(arguments[0]).overflowY", review) == "auto"
            seen.add(text)
            driver.find_element(By.TAG_NAME, "body").send_keys("n")
        _wait_for(driver, "document.body.dataset.labelled === '3'")
        assert seen == {SCRIPT, LONG, "Plain and dull."}
        assert driver.execute_script("return window.pwned === undefined")
        assert driver.find_element(By.ID, "review").text == "Nothing left to label."
        assert {r["text"] for r in _records(labels)} == seen
    finally:
        driver.quit()
        server.kill()


def test_browser_tests_are_not_skipped_where_chromium_exists():
    """Guard: with Chromium and its driver installed, the browser tests must run (selenium missing fails here)."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists() and NO_BROWSER:
        pytest.fail(f"Chromium is installed but the browser tests would skip: {NO_BROWSER}")
