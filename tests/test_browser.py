"""The page in a real browser: Debian's Chromium driven by Playwright, a real gateway process and
a real server process. Set WORDSTREAM_SCREENSHOT=docs/gateway.png to refresh the README's picture."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.helpers import gateway_stack, start_gateway, start_server_process
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
    with gateway_stack(tiny_models["lstm"].parent) as (_, gateway_port, port):
        yield f"http://127.0.0.1:{gateway_port}/", f"localhost:{port}"


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


def test_a_page_sends_again_what_a_failed_over_store_lost(
    page: Page, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The page's text box is the log: a Redis Cluster failover loses the last two words the page
    typed (they reached the old primary only), and the gateway goes down with them. The page
    reconnects to the gateway (back on its port), resumes, gets the six words the store kept,
    and sends the two after them again: the session ends as an uninterrupted run."""
    from deploy.cluster import RedisCluster
    from tests.helpers import lose_the_tail, offline_steps, poll, same_steps

    cluster = RedisCluster(tmp_path / "redis-cluster").start()
    server, port = start_server_process(
        tiny_models["lstm"].parent, "--default-model", "tiny-lstm", "--state-store", cluster.url
    )
    gateway, gateway_port = start_gateway(f"localhost:{port}")
    try:
        page.goto(f"http://127.0.0.1:{gateway_port}/")
        expect(page.get_by_test_id("status")).to_have_text("connected")
        box = page.get_by_test_id("typing-input")
        box.click()
        box.press_sequentially("the film is a great story ", delay=15)
        expect(page.get_by_test_id("word-count")).to_have_text("6")
        session_id = page.evaluate("localStorage.getItem('wordstream.session')")

        def typing() -> None:  # these two reach the old primary only
            box.press_sequentially("but dull ", delay=15)
            expect(page.get_by_test_id("word-count")).to_have_text("8")
            gateway.kill()
            gateway.wait()

        lose_the_tail(cluster, session_id, typing)
        with Client(f"localhost:{port}") as client:
            assert client.get_session(session_id)["words"] == 6  # the store lost the tail
        expect(page.get_by_test_id("status")).not_to_have_text("connected")
        restarted, _ = start_gateway(f"localhost:{port}", port=gateway_port)
        try:
            expect(page.get_by_test_id("status")).to_have_text("connected", timeout=15_000)
            words = "the film is a great story but dull".split()
            with Client(f"localhost:{port}") as client:
                poll(lambda: client.get_session(session_id)["words"] == 8, "the page to send the lost words again")
                record = client.get_session(session_id)
            expect(page.get_by_test_id("word-count")).to_have_text("8")
            assert record["words"] == 8 and [s.word for s in record["history"]][-2:] == ["but", "dull"]
            assert same_steps(record["history"], offline_steps(tiny_models["lstm"], words))
        finally:
            restarted.kill()
    finally:
        gateway.kill()
        server.kill()
        cluster.stop()


def test_a_paste_of_a_hundred_words_goes_through_the_word_rate_cap(stack: tuple[str, str], page: Page) -> None:
    """The gateway caps words per socket (30 a second, bursts of 200): a pasted paragraph of 100
    words is sent by the page at once and still answered in full."""
    url, target = stack
    page.goto(url)
    expect(page.get_by_test_id("status")).to_have_text("connected")
    words = (SENTENCE.split() * 10)[:100]
    page.get_by_test_id("typing-input").fill(" ".join(words) + " ")
    expect(page.get_by_test_id("word-count")).to_have_text("100", timeout=30_000)
    session_id = page.evaluate("localStorage.getItem('wordstream.session')")
    with Client(target) as client:
        assert client.get_session(session_id)["words"] == 100
    expect(page.get_by_test_id("error")).to_have_text("")  # no word was refused
