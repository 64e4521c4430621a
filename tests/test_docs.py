"""The docs name only what exists: every test a doc cites is a test of the suite, every link a file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def defined_tests() -> dict[str, set[str]]:
    """Test file (tests/x.py) -> the names of the test functions it defines."""
    found = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        found[f"tests/{path.name}"] = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        }
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_test_a_doc_names_exists(doc: str) -> None:
    text = (ROOT / doc).read_text()
    tests = defined_tests()
    every = set().union(*tests.values())
    missing = [
        f"{file}::{name}"
        for file, name in re.findall(r"(tests/test_\w+\.py)::(test_\w+)", text)
        if name not in tests.get(file, set())
    ]
    missing += [name for name in re.findall(r"`(test_\w+)", text) if name not in every]
    assert missing == [], missing


@pytest.mark.parametrize("doc", DOCS)
def test_every_file_a_doc_links_exists(doc: str) -> None:
    text = (ROOT / doc).read_text()
    base = (ROOT / doc).parent
    links = [link.split("#")[0] for link in re.findall(r"\]\(([^)]+)\)", text) if "://" not in link]
    assert [link for link in links if link and not (base / link).exists()] == []


@pytest.mark.parametrize(
    ("bench", "doc"),
    [("scaling", "SCALING.md"), ("failover", "SCALING.md"), ("groupcommit", "SCALING.md"), ("storage", "SCALING.md")]
    + [
        ("compiled", "COST.md"),
        ("gateway", "COST.md"),
        ("levers", "COST.md"),
        ("threads", "COST.md"),
        ("floor", "COST.md"),
    ],
)
def test_bench_figures_are_what_their_kept_run_renders(bench: str, doc: str) -> None:
    """Each generated part of docs/SCALING.md and docs/COST.md is its bench's rendering of the run
    it links: a figure edited by hand, or a run kept without its text, fails here."""
    import importlib
    import json

    from bench.servers import section

    text = (ROOT / "docs" / doc).read_text()
    part = text.split(f"<!-- bench.{bench}: begin -->\n", 1)[1].split(f"<!-- bench.{bench}: end -->", 1)[0]
    (name,) = re.findall(rf"\(bench-runs/({bench}-\w+\.json)\)", part)
    report = json.loads((ROOT / "docs" / "bench-runs" / name).read_text())
    markdown = importlib.import_module(f"bench.{bench}").markdown
    assert part == section(bench, report, markdown(report))


def test_every_kept_bench_run_is_linked_from_a_doc() -> None:
    """docs/bench-runs holds the runs the docs name, no others."""
    linked = set()
    for doc in DOCS:
        linked |= set(re.findall(r"bench-runs/([\w.-]+\.json)", (ROOT / doc).read_text()))
    kept = {p.name for p in (ROOT / "docs" / "bench-runs").glob("*.json")}
    assert kept - linked == set(), sorted(kept - linked)


@pytest.mark.parametrize("doc", ["README.md", "docs/MODELS.md"])
def test_model_tables_are_what_the_results_render(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every marked table of the doc is `python -m experiments table --write`'s rendering of
    experiments/experiments.jsonl and the shipped files: a figure edited by hand fails here."""
    from experiments import tables
    from experiments.sweeps import VARIANTS, read_results

    monkeypatch.chdir(ROOT)  # the results and the models are found from the repository's root
    rendered = tables.blocks(read_results(), VARIANTS)
    found = tables.sections((ROOT / doc).read_text())
    assert found, f"{doc} has no marked tables"
    for name, table in found.items():
        assert table == rendered[name], f"{doc}: table {name} differs from `python -m experiments table --write`"


def test_every_status_the_server_returns_is_named_in_the_proto_and_the_readme() -> None:
    """The status table (wordstream/server/status.py), the token check's UNAUTHENTICATED and the
    fault barrier's INTERNAL: each code is named in the proto's rpc comments and in the README's
    API section, and so are the state store's UNAVAILABLE cases."""
    from wordstream.server.status import STATUS

    codes = {code.name for code in STATUS.values()} | {"UNAUTHENTICATED", "INTERNAL"}
    proto = (ROOT / "proto" / "wordstream" / "v1" / "wordstream.proto").read_text()
    service = proto.split("service Wordstream {", 1)[1].split("\n}", 1)[0]
    readme = (ROOT / "README.md").read_text()
    api = readme.split("## The API", 1)[1].split("\n## ", 1)[0]
    for where, text in (("the proto's rpc comments", service), ("the README's API section", api)):
        assert [c for c in sorted(codes) if c not in text] == [], where
        assert "store" in text and ("took the session over" in text or "taken over" in text), where
    for source in ("auth.py", "transport.py"):  # the codes raised outside the table are the two above
        raised = set(re.findall(r"StatusCode\.([A-Z_]+)", (ROOT / "wordstream" / "server" / source).read_text()))
        assert raised <= codes, (source, raised - codes)
