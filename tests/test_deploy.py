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

from wordstream.server.config import Settings

ROOT = Path(__file__).resolve().parent.parent
# What the compose files may set: the server's settings and the variables its health check's client reads.
KNOWN_VARIABLES = {f"WORDSTREAM_{f.name.upper()}" for f in fields(Settings)} | {
    "WORDSTREAM_TLS",
    "WORDSTREAM_ROOT_CERTIFICATES",
    "WORDSTREAM_TLS_SERVER_NAME",
    "WORDSTREAM_TOKEN",
}


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
    assert set(service["environment"]) <= KNOWN_VARIABLES, set(service["environment"]) - KNOWN_VARIABLES
    settings = Settings.from_args([], environ={k: str(v) for k, v in service["environment"].items()})
    assert settings.port == 50051 and settings.default_model == "sentiment-lstm"
    assert (ROOT / "models" / f"{settings.default_model}.onnx").is_file()
    assert service["healthcheck"]["test"][1:] == [
        "python",
        "-m",
        "wordstream.client",
        "health",
        "--server",
        "localhost:50051",
    ]
    assert service["restart"] == "unless-stopped"


def test_compose_health_check_works_with_tls_on(tmp_path: Path) -> None:
    """docker-compose.tls.yml over docker-compose.yml: a real server with the merged environment,
    and the compose health check command run with that same environment, as the container would."""
    from tests.helpers import self_signed_certificate

    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["wordstream"]
    tls = yaml.safe_load((ROOT / "docker-compose.tls.yml").read_text())["services"]["wordstream"]
    environment = {**base["environment"], **tls["environment"]}
    assert set(environment) <= KNOWN_VARIABLES, set(environment) - KNOWN_VARIABLES
    mount = next(v.split(":")[1] for v in tls["volumes"] if v.startswith("./tls:"))
    self_signed_certificate(tmp_path)  # key.pem and cert.pem, as the override expects them in ./tls
    env = {
        **os.environ,
        **{
            k: str(v).replace(mount, str(tmp_path)).replace("/app/models", str(ROOT / "models"))
            for k, v in environment.items()
        },
        "WORDSTREAM_PORT": "0",
        "WORDSTREAM_HOST": "localhost",
        "WORDSTREAM_STATE_DIR": str(tmp_path / "state"),
    }
    from tests.helpers import start_server_process

    process, port = start_server_process(ROOT / "models", env=env)
    try:
        check = [sys.executable if word == "python" else word for word in base["healthcheck"]["test"][1:]]
        check[check.index("--server") + 1] = f"localhost:{port}"
        health = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert health.stdout.strip() == "SERVING", health.stderr
        plain = {k: v for k, v in env.items() if k not in ("WORDSTREAM_TLS", "WORDSTREAM_ROOT_CERTIFICATES")}
        refused = subprocess.run(check, cwd=ROOT, env=plain, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1, "the server must not answer plaintext"
    finally:
        process.kill()


def test_dockerfile_serves_without_torch_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install '.[serve]'" in dockerfile and "torch" not in dockerfile.split("FROM", 1)[1].replace(
        "no torch", ""
    )
    assert re.search(r"^USER wordstream$", dockerfile, re.M)
    assert 'CMD ["python", "-m", "wordstream.server"]' in dockerfile
    assert 'CMD ["python", "-m", "wordstream.client", "health", "--server", "localhost:50051"]' in dockerfile
    for folder in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (ROOT / folder).exists(), folder
    # The image's commands are the README's: the serve target installs the same extra and runs the same module.
    makefile = (ROOT / "Makefile").read_text()
    assert "-e '.[serve]'" in makefile and "$(PY) -m wordstream.server" in makefile


def test_the_installed_distribution_imports_under_one_name(tmp_path: Path) -> None:
    """pip puts one top-level package into site-packages, wordstream (no server, client, export,
    textcodec or modelfile of its own to collide with a user's modules), and the README's
    python -m commands run from it, outside the checkout."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    top = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert top == {"wordstream"}, top
    installed = {p.name for p in (target / "wordstream").iterdir()}
    assert {"server", "client", "export", "textcodec", "modelfile", "v1", "shared.py"} <= installed
    assert not any((target / "wordstream" / name).is_symlink() for name in installed)  # real files, not links
    env = {**os.environ, "PYTHONPATH": str(target)}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for module in ("wordstream.server", "wordstream.client", "wordstream.export.evaluate"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=outside, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and "usage:" in result.stdout, (module, result.stderr[-2000:])
    where = subprocess.run(
        [sys.executable, "-c", "import wordstream.server.app as m; print(m.__file__)"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr


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
        source = ROOT / name
        if source.is_symlink():  # wordstream/<package> links to ../<package>
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(source), copy / name)
        elif source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
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
