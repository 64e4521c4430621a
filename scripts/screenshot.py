"""docs/gateway.png, the README's picture of the page: the default models, a real server, the
gateway and Debian's Chromium (Playwright), a sentence typed word by word.

    python scripts/screenshot.py [--out docs/gateway.png] [--text "..."]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the cast is wonderful and the first hour is a joy but the plot falls apart and the ending is dull "


def started(command: list[str], pattern: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(pattern, line)
    if not match:
        process.kill()
        raise RuntimeError(f"{command[2]} did not start: {line!r}")
    return process, int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "gateway.png"))
    parser.add_argument("--text", default=TEXT)
    args = parser.parse_args()
    server, port = started(
        [sys.executable, "-m", "wordstream.server", "--host", "localhost", "--port", "0"], r"on port (\d+)"
    )
    gateway, web = started(
        [sys.executable, "-m", "wordstream.gateway", "--host", "127.0.0.1", "--port", "0"]
        + ["--server", f"localhost:{port}"],
        r"http://localhost:(\d+)/",
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "chromium", args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"http://127.0.0.1:{web}/")
            expect(page.get_by_test_id("status")).to_have_text("connected")
            page.get_by_test_id("typing-input").press_sequentially(args.text, delay=10)
            expect(page.get_by_test_id("word-count")).to_have_text(str(len(args.text.split())))
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        gateway.kill()
        server.kill()
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
