"""The README's two commands, .ci/run, the Dockerfile and docker-compose.yml agree with the server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the quick start has a sh code block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    serve, test = quick_start()
    assert (serve, test) == ("make serve", "make test")
    ci = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci == [test]


def test_compose_file_names_what_the_server_expects() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["wordstream"]
    assert service["build"] == "." and "50051:50051" in service["ports"]
    known = {f"WORDSTREAM_{f.name.upper()}" for f in fields(Settings)}
    assert set(service["environment"]) <= known, set(service["environment"]) - known
    settings = Settings.from_args([], environ={k: str(v) for k, v in service["environment"].items()})
    assert settings.port == 50051 and settings.default_model == "sentiment-lstm"
    assert (ROOT / "models" / f"{settings.default_model}.onnx").is_file()
    assert service["healthcheck"]["test"][1:] == ["python", "-m", "client", "health", "--server", "localhost:50051"]
    assert service["restart"] == "unless-stopped"


def test_dockerfile_serves_without_torch_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install '.[serve]'" in dockerfile and "torch" not in dockerfile.split("FROM", 1)[1].replace(
        "no torch", ""
    )
    assert re.search(r"^USER wordstream$", dockerfile, re.M)
    assert 'CMD ["python", "-m", "server"]' in dockerfile
    assert 'CMD ["python", "-m", "client", "health", "--server", "localhost:50051"]' in dockerfile
    for folder in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (ROOT / folder).exists(), folder
    # The image's commands are the README's: the serve target installs the same extra and runs the same module.
    makefile = (ROOT / "Makefile").read_text()
    assert "-e '.[serve]'" in makefile and "$(PY) -m server" in makefile


def test_serving_extra_never_pulls_torch() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serving = project["dependencies"] + project["optional-dependencies"]["serve"]
    assert not [d for d in serving if d.startswith("torch")]


@pytest.mark.slow
def test_quick_start_serve_command_from_a_fresh_copy(tmp_path: Path) -> None:
    """`make serve` in a copy of the repository: a new .venv, serving-only install, a healthy server."""
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    copy = tmp_path / "wordstream"
    for name in tracked:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    serve = quick_start()[0].split()
    env = {**os.environ, "WORDSTREAM_PORT": "0", "WORDSTREAM_HOST": "localhost"}
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        serve, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        port, output = None, []
        deadline = time.monotonic() + 480
        while port is None and time.monotonic() < deadline:
            line = process.stdout.readline() if process.stdout else ""
            if not line and process.poll() is not None:
                break
            output.append(line)
            match = re.search(r"serving .* on port (\d+)", line)
            port = int(match.group(1)) if match else None
        assert port, "".join(output[-30:])
        health = subprocess.run(
            [sys.executable, "-m", "client", "health", "--server", f"localhost:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert health.stdout.strip() == "SERVING", health.stderr
        installed = subprocess.run(
            [str(copy / ".venv/bin/python"), "-m", "pip", "list"], capture_output=True, text=True
        )
        names = {line.split()[0].lower() for line in installed.stdout.splitlines()[2:] if line.strip()}
        assert "onnxruntime" in names and "torch" not in names
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_readme_documents_every_server_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [f.name for f in fields(Settings) if f"--{f.name.replace('_', '-')}" not in table]
    assert missing == [], missing
