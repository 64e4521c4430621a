"""The repository's shape: one real package, research beside it, nothing found through links."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "node_modules", "runs", "build", "dist"}


def test_no_links_and_no_second_import_name() -> None:
    links = [
        str(Path(folder, name).relative_to(ROOT))
        for folder, dirs, files in os.walk(ROOT)
        for name in dirs + files
        if Path(folder, name).is_symlink() and not (set(Path(folder).relative_to(ROOT).parts) & SKIP)
    ]
    assert not links
    for short in ("server", "client", "gateway", "export", "textcodec", "modelfile"):
        assert importlib.util.find_spec(short) is None, f"{short} is importable from the checkout"
    assert importlib.util.find_spec("wordstream.export") is None
    assert importlib.util.find_spec("wordstream.training") is not None


def test_package_code_never_looks_for_the_repository() -> None:
    """Paths come from arguments (relative to the working directory) or importlib.resources."""
    offenders = [
        str(path.relative_to(ROOT)) for path in (ROOT / "wordstream").rglob("*.py") if "__file__" in path.read_text()
    ]
    assert not offenders
