"""The page in a real browser: Debian's Chromium driven by Playwright, a real gateway process and
a real server process. Set WORDSTREAM_SCREENSHOT=docs/gateway.png to refresh the README's picture."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.helpers import start_server_process
from wordstream.client import Client

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SENTENCE = "the film is a great story but the plot is dull and boring "


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is not installed (`make test` installs it: apt-get install chromium)"
    return path


@pytest.fixture
def stack(tiny_models: dict[str, Path]) -> Iterator[tuple[str, str]]:
    """(gateway URL, server target): a server process and a gateway process in front of it."""
    server, port = start_server_process(tiny_models["lstm"].parent, "--default-model", "tiny-lstm")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "wordstream.gateway", "--host", "127.0.0.1", "--port", "0"]
        + ["--server", f"localhost:{port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = gateway.stdout.readline() if gateway.stdout else ""
        match = re.search(r"http://localhost:(\d+)/", line)
        assert match, f"the gateway did not start: {line!r}"
        yield f"http://127.0.0.1:{match.group(1)}/", f"localhost:{port}"
    finally:
        gateway.kill()
        server.kill()


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()


def test_typing_in_the_page_labels_every_word_rewinds_on_backspace_and_resumes_after_a_reload(
    stack: tuple[str, str], page: Page, tmp_path: Path
) -> None:
    url, target = stack
    page.goto(url)
    expect(page.get_by_test_id("status")).to_have_text("connected")
    expect(page.get_by_test_id("model-picker")).to_have_value("tiny-lstm")
    box = page.get_by_test_id("typing-input")
    box.click()
    box.press_sequentially(SENTENCE, delay=15)
    words = SENTENCE.split()
    expect(page.get_by_test_id("word-count")).to_have_text(str(len(words)))
    labels = page.get_by_test_id("label")
    expect(labels).to_have_count(len(words))
    assert set(labels.all_inner_texts()) <= {"negative", "positive"}
    probabilities = [float(p) for p in page.get_by_test_id("probability").all_inner_texts()]
    assert len(probabilities) == len(words) and all(0.5 <= p <= 1 for p in probabilities)
    session_id = page.evaluate("localStorage.getItem('wordstream.session')")
    with Client(target) as client:
        record = client.get_session(session_id)
    assert record["words"] == len(words)
    expect(page.get_by_test_id("state-heatmap")).to_have_attribute("data-steps", str(record["steps"]))
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    if os.environ.get("WORDSTREAM_SCREENSHOT"):
        page.screenshot(path=os.environ["WORDSTREAM_SCREENSHOT"], full_page=True)

    # Backspace over the last word ("boring" and the space after it): the session rewinds it.
    for _ in range(len("boring ")):
        box.press("Backspace")
    expect(page.get_by_test_id("word-count")).to_have_text(str(len(words) - 1))
    expect(page.get_by_test_id("label")).to_have_count(len(words) - 1)
    with Client(target) as client:
        assert client.get_session(session_id)["words"] == len(words) - 1

    # A reload resumes the same session: its words come back, the next word carries on from them.
    page.reload()
    expect(page.get_by_test_id("status")).to_have_text("connected")
    expect(page.get_by_test_id("word-count")).to_have_text(str(len(words) - 1))
    assert page.evaluate("localStorage.getItem('wordstream.session')") == session_id
    expect(box).to_have_value(" ".join(words[:-1]) + " ")
    box.press("End")
    box.press_sequentially("superb ", delay=15)
    expect(page.get_by_test_id("word-count")).to_have_text(str(len(words)))
    with Client(target) as client:
        record = client.get_session(session_id)
    assert record["words"] == len(words) and record["history"][-1].word == "superb"
