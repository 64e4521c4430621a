"""The README's two commands, .ci/run, the Dockerfile and docker-compose.yml agree with the server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

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
    assert service["build"] == "." and service["deploy"]["replicas"] >= 2 and "ports" not in service
    assert set(service["environment"]) <= KNOWN_VARIABLES, set(service["environment"]) - KNOWN_VARIABLES
    settings = Settings.from_args([], environ={k: str(v) for k, v in service["environment"].items()})
    assert settings.port == 50051 and settings.default_model == "sentiment-lstm"
    assert settings.state_store == "redis://redis:6379/0" and not settings.state_dir and settings.drain == 2
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
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    # Envoy holds the public port and runs deploy/envoy.yaml; Redis keeps an AOF on a volume.
    envoy, redis = compose["services"]["envoy"], compose["services"]["redis"]
    assert envoy["ports"] == ["127.0.0.1:50051:50051"] and envoy["image"].startswith("envoyproxy/envoy:")
    assert "./deploy/envoy.yaml:/etc/envoy/envoy.yaml:ro" in envoy["volumes"]
    assert redis["image"].startswith("redis:") and "--appendonly" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    # The replicas' address in Envoy's cluster is the compose service's name and port.
    (cluster,) = yaml.safe_load((ROOT / "deploy/envoy.yaml").read_text())["static_resources"]["clusters"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "wordstream", "port_value": 50051}
    assert cluster["type"] == "STRICT_DNS" and cluster["lb_policy"] == "RING_HASH"


def compose(name: str) -> dict[str, Any]:
    """A compose file as compose merges it: its one merge tag, ``!override`` (a list that replaces
    the base's instead of adding to it), read as the plain list."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text().replace(": !override", ":"))
    return loaded


def test_compose_publishes_on_loopback_unless_the_expose_override_is_used() -> None:
    """docker-compose.yml publishes Envoy and the page on 127.0.0.1 only, Redis nowhere; the
    documented override, docker-compose.expose.yml, publishes them on every interface and turns
    tokens on, for the replicas and the gateway, whose hop to Envoy says why it may be plaintext."""
    base = compose("docker-compose.yml")["services"]
    published = {name: service.get("ports", []) for name, service in base.items()}
    assert published["envoy"] and published["gateway"] and not published["redis"] and not published["wordstream"]
    assert all(port.startswith("127.0.0.1:") for ports in published.values() for port in ports), published
    expose_text = (ROOT / "docker-compose.expose.yml").read_text()
    assert "ports: !override" in expose_text  # replaces the base's list instead of adding to it
    expose = compose("docker-compose.expose.yml")["services"]
    assert expose["envoy"]["ports"] == ["50051:50051"] and expose["gateway"]["ports"] == ["8080:8080"]
    assert "${WORDSTREAM_TOKEN:?" in expose["wordstream"]["environment"]["WORDSTREAM_TOKENS"]
    gateway = expose["gateway"]["environment"]
    assert "${WORDSTREAM_TOKEN:?" in gateway["WORDSTREAM_TOKEN"] and gateway["WORDSTREAM_INSECURE_TOKEN"] == "1"
    assert "stays inside this compose network" in expose_text and "WORDSTREAM_ALLOWED_HOSTS" in gateway
    assert set(expose["wordstream"]["environment"]) <= KNOWN_VARIABLES


def envoy_route(config: dict[str, Any]) -> dict[str, Any]:
    (listener,) = config["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = manager["route_config"]["virtual_hosts"][0]["routes"]
    return dict(route["route"])


@pytest.mark.slow
def test_envoy_config_hashes_on_the_session_id_checks_health_and_validates(tmp_path: Path) -> None:
    from deploy.cluster import binary, envoy_config

    config = yaml.safe_load((ROOT / "deploy/envoy.yaml").read_text())
    route = envoy_route(config)
    assert route["hash_policy"] == [{"header": {"header_name": "x-session-id"}}]
    assert route["timeout"] == "0s" and "connect-failure" in route["retry_policy"]["retry_on"]
    (check,) = config["static_resources"]["clusters"][0]["health_checks"]
    assert check["grpc_health_check"] == {"service_name": "wordstream.v1.Wordstream"} and check["interval"] == "1s"
    # The admin API (it can drain listeners, dump the configuration, quit) listens inside the container only.
    for shipped in ("deploy/envoy.yaml", "deploy/envoy-tls.yaml"):
        admin = yaml.safe_load((ROOT / shipped).read_text())["admin"]["address"]["socket_address"]
        assert admin["address"] == "127.0.0.1", shipped
    # Kubernetes runs a copy (kustomize reads nothing outside deploy/k8s): it must be the same file.
    assert (ROOT / "deploy/k8s/base/envoy.yaml").read_bytes() == (ROOT / "deploy/envoy.yaml").read_bytes()
    # The TLS variant is the same configuration plus TLS on the listener, nothing else.
    tls = yaml.safe_load((ROOT / "deploy/envoy-tls.yaml").read_text())
    tls["static_resources"]["listeners"][0]["filter_chains"][0].pop("transport_socket")
    assert tls == config
    # Envoy itself accepts them: the file as shipped, and as deploy/cluster.py runs it (with TLS too).
    from tests.helpers import self_signed_certificate

    key, cert = self_signed_certificate(tmp_path)
    local = tmp_path / "local.json"
    local.write_text(json.dumps(envoy_config([50052, 50053], 50051, 9901, tls=(key, cert))))
    for path in (ROOT / "deploy/envoy.yaml", local):
        result = subprocess.run(
            [binary("envoy"), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and "OK" in result.stdout + result.stderr, result.stderr[-2000:]


@pytest.mark.slow
def assert_valid(manifests: str, documents: int, tmp_path: Path) -> None:
    """kubernetes-validate --strict passes every one of the rendered objects."""
    path = tmp_path / "rendered.yaml"
    path.write_text(manifests)
    validate = Path(sys.executable).parent / "kubernetes-validate"
    checked = subprocess.run([str(validate), "--strict", str(path)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed") == documents, checked.stdout


def test_kubernetes_manifests_render_and_validate(tmp_path: Path) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy/k8s")], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    documents = {(d["kind"], d["metadata"]["name"].split("-")[0]): d for d in yaml.safe_load_all(rendered.stdout)}
    assert set(documents) == {
        ("Deployment", "wordstream"),
        ("Service", "wordstream"),
        ("PodDisruptionBudget", "wordstream"),
        ("Deployment", "envoy"),
        ("Service", "envoy"),
        ("ConfigMap", "envoy"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("NetworkPolicy", "default"),
        ("NetworkPolicy", "envoy"),
        ("NetworkPolicy", "wordstream"),
        ("NetworkPolicy", "redis"),
    }
    assert documents["Service", "wordstream"]["spec"]["clusterIP"] == "None"  # headless: Envoy sees every pod
    pod = documents["Deployment", "wordstream"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["grpc"] == {"port": 50051, "service": "wordstream.v1.Wordstream"}
    assert "preStop" in container["lifecycle"]
    environment = {e["name"]: e.get("value", "") for e in container["env"]}
    assert set(environment) <= KNOWN_VARIABLES
    settings = Settings.from_args([], environ=environment)
    assert settings.state_store == "redis://redis:6379/0" and settings.drain == 2
    assert documents["ConfigMap", "envoy"]["data"]["envoy.yaml"] == (ROOT / "deploy/envoy.yaml").read_text()
    assert_valid(rendered.stdout, len(documents), tmp_path)


def rendered_documents(layout: str) -> list[dict[str, Any]]:
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / layout)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    return list(yaml.safe_load_all(rendered.stdout))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["deploy/k8s", "deploy/k8s/overlays/redis-cluster"])
def test_every_kubernetes_pod_runs_restricted_and_only_what_must_talk_can(layout: str) -> None:
    """Every workload (replicas, Envoy, Redis, the Job) runs under the restricted profile, with
    requests and limits and no service-account token; secrets come from the Secret; the
    NetworkPolicies deny by default and let only Envoy reach the replicas and only the replicas
    (and, sharded, the nodes and the Job) reach Redis; nothing reaches Envoy's admin API."""
    documents = rendered_documents(layout)
    workloads = [d for d in documents if d["kind"] in ("Deployment", "StatefulSet", "Job")]
    assert {d["metadata"]["name"] for d in workloads} >= {"wordstream", "envoy"}
    for workload in workloads:
        name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["readOnlyRootFilesystem"] is True, name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
        text = yaml.safe_dump(pod)
        assert "requirepass" not in text or "redis-password" in text, name  # a password from the Secret only
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    (envoy,) = by_name["Deployment", "envoy"]["spec"]["template"]["spec"]["containers"]
    assert [p["containerPort"] for p in envoy["ports"]] == [50051] and "exec" in envoy["readinessProbe"]
    (replica,) = by_name["Deployment", "wordstream"]["spec"]["template"]["spec"]["containers"]
    environment = {e["name"]: e.get("value", "") for e in replica["env"]}
    assert environment["WORDSTREAM_TOKENS_FILE"] and environment["WORDSTREAM_STATE_STORE_PASSWORD_FILE"]
    policies = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}

    def sources(policy: str) -> set[str]:
        return {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for rule in policies[policy]["ingress"]
            for peer in rule.get("from", [])
        }

    def ports(policy: str) -> set[int]:
        return {port["port"] for rule in policies[policy]["ingress"] for port in rule["ports"]}

    assert ports("envoy-from-clients") == {50051}  # not 9901: the admin API is on the pod's loopback
    assert sources("wordstream-from-envoy") == {"envoy"} and ports("wordstream-from-envoy") == {50051}
    if "redis-from-wordstream" in policies:
        assert sources("redis-from-wordstream") == {"wordstream"} and ports("redis-from-wordstream") == {6379}
    else:
        assert sources("redis-cluster-ingress") == {"wordstream", "redis-cluster-create", "redis-cluster"}
        assert ports("redis-cluster-ingress") == {6379, 16379}


@pytest.mark.slow
def test_the_kubernetes_redis_cluster_overlay_renders_and_validates(tmp_path: Path) -> None:
    """deploy/k8s/overlays/redis-cluster: the base with six Redis Cluster pods, their headless
    Service, a PodDisruptionBudget and the Job that creates the cluster in place of one Redis; the
    replicas' store names every node."""
    overlay = ROOT / "deploy/k8s/overlays/redis-cluster"
    rendered = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    documents = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered.stdout)}
    assert ("StatefulSet", "redis") not in documents and ("Service", "redis") not in documents
    nodes = documents["StatefulSet", "redis-cluster"]
    assert nodes["spec"]["replicas"] == 6 and documents["Service", "redis-cluster"]["spec"]["clusterIP"] == "None"
    assert {("PodDisruptionBudget", "redis-cluster"), ("Job", "redis-cluster-create")} <= set(documents)
    config = documents["ConfigMap", "redis-cluster"]["data"]["redis.conf"]
    assert "cluster-preferred-endpoint-type hostname" in config and "cluster-replica-validity-factor 0" in config
    (container,) = documents["Deployment", "wordstream"]["spec"]["template"]["spec"]["containers"]
    environment = {e["name"]: e.get("value", "") for e in container["env"]}
    settings = Settings.from_args([], environ=environment)
    from wordstream.server.cluster_ledger import seed_nodes

    _, _, seeds = seed_nodes(settings.state_store)
    assert seeds == [(f"redis-cluster-{i}.redis-cluster", 6379) for i in range(6)]
    assert_valid(rendered.stdout, len(documents), tmp_path)


def test_the_compose_redis_cluster_overlay_names_six_nodes_and_creates_the_cluster() -> None:
    """docker-compose.redis-cluster.yml: the base's redis becomes node 0 of six cluster nodes, none
    published; the replicas' store names every node and waits for the cluster to be created."""
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    overlay = yaml.safe_load((ROOT / "docker-compose.redis-cluster.yml").read_text())["services"]
    nodes = ["redis"] + [f"redis-{i}" for i in range(1, 6)]
    assert set(nodes) <= set(overlay) and not any("ports" in overlay[n] for n in nodes)
    for node in nodes:
        command = " ".join(overlay[node]["command"])
        assert "--cluster-enabled yes" in command and f"--cluster-announce-hostname {node}" in command
    environment = {**base["wordstream"]["environment"], **overlay["wordstream"]["environment"]}
    settings = Settings.from_args([], environ={k: str(v) for k, v in environment.items()})
    from wordstream.server.cluster_ledger import seed_nodes

    assert [host for host, _ in seed_nodes(settings.state_store)[2]] == nodes
    assert overlay["wordstream"]["depends_on"]["redis-cluster-create"]["condition"] == "service_completed_successfully"
    assert "--cluster-replicas 1" in " ".join(overlay["redis-cluster-create"]["command"])


@pytest.mark.slow
def test_compose_tls_overlay_serves_tls_through_envoy(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """docker-compose.tls.yml: Envoy (deploy/envoy-tls.yaml) terminates TLS in front of a replica;
    a client with the certificate gets through, a plaintext one does not."""
    from deploy.cluster import Envoy, Redis, Replica
    from tests.helpers import self_signed_certificate
    from wordstream.client import Client, WordstreamError

    overlay = yaml.safe_load((ROOT / "docker-compose.tls.yml").read_text())["services"]
    assert set(overlay) == {"envoy", "gateway"}
    assert "./deploy/envoy-tls.yaml:/etc/envoy/envoy.yaml:ro" in overlay["envoy"]["volumes"]
    assert "./tls:/etc/envoy/tls:ro" in overlay["envoy"]["volumes"]
    assert "./tls/cert.pem:/etc/wordstream/tls/cert.pem:ro" in overlay["gateway"]["volumes"]
    key, cert = self_signed_certificate(tmp_path)
    redis = Redis(tmp_path / "redis").start()
    replica = Replica("r1", tiny_models["lstm"].parent, redis.url, default_model="tiny-lstm").start()
    envoy = Envoy([replica.port], directory=tmp_path, tls=(key, cert)).start()
    try:
        with Client(envoy.target, root_certificates=cert.read_bytes()) as client:
            assert client.health() == "SERVING"
            with client.session() as session:
                assert session.push("good").output is not None
        with Client(envoy.target, timeout=3) as plain, pytest.raises(WordstreamError):
            plain.health()
        # The gateway with the overlay's settings (its certificate path pointed at ours) reaches
        # the TLS listener: its health is the server's, and a page's socket serves a word.
        environment = {k: str(v) for k, v in overlay["gateway"]["environment"].items()}
        environment["WORDSTREAM_ROOT_CERTIFICATES"] = str(cert)
        environment["WORDSTREAM_TLS_SERVER_NAME"] = "localhost"
        assert gateway_serves_a_word(envoy.target, environment)
    finally:
        envoy.stop()
        replica.kill()
        redis.stop()


def gateway_serves_a_word(server: str, environment: dict[str, str]) -> bool:
    """A gateway process in front of ``server`` with these WORDSTREAM_* settings: its /healthz
    says SERVING and a socket opened as its page would gets a word answered."""
    import urllib.request

    from websockets.sync.client import connect
    from websockets.typing import Origin

    from tests.helpers import start_gateway

    process, port = start_gateway(server, env={**os.environ, **environment})
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/healthz", timeout=10) as answer:
            assert json.loads(answer.read())["server"] == "SERVING"
        page = f"http://localhost:{port}"
        with connect(f"ws://localhost:{port}/ws", origin=Origin(page), open_timeout=10) as ws:
            ws.send(json.dumps({"open": {}}))
            assert "opened" in json.loads(ws.recv(timeout=10))
            ws.send(json.dumps({"word": "good"}))
            return "word" in json.loads(ws.recv(timeout=10))
    finally:
        process.kill()


def test_dockerfile_serves_without_torch_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # A builder stage compiles the hot path into the wheel; the image installs that wheel's extras.
    assert "WORDSTREAM_COMPILE=1 pip wheel --no-deps --wheel-dir /wheels ." in dockerfile
    assert "[serve,gateway]" in dockerfile and "COPY --from=build /wheels /wheels" in dockerfile
    assert "torch" not in dockerfile.split("FROM", 1)[1].replace("no torch", "")
    assert re.search(r"^USER wordstream$", dockerfile, re.M)
    assert 'CMD ["python", "-m", "wordstream.server"]' in dockerfile
    assert 'CMD ["python", "-m", "wordstream.client", "health", "--server", "localhost:50051"]' in dockerfile
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for name in copied.split():
            assert (ROOT / name).exists(), name
    # The image's commands are the README's: the serve target installs the same extra and runs the same module.
    makefile = (ROOT / "Makefile").read_text()
    assert "-e '.[serve]'" in makefile and "$(PY) -m wordstream.server" in makefile


@pytest.mark.slow
def test_the_installed_distribution_imports_under_one_name(tmp_path: Path) -> None:
    """pip puts one top-level package into site-packages, wordstream (no server, client, training,
    textcodec or modelfile of its own to collide with a user's modules), and the README's
    python -m commands run from it, outside the checkout."""
    from bench.servers import install_copy

    target = install_copy(tmp_path / "site")
    top = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert top == {"wordstream"}, top
    installed = {p.name for p in (target / "wordstream").iterdir()}
    assert {"server", "client", "gateway", "training", "textcodec", "modelfile", "v1", "shared.py"} <= installed
    assert "export" not in installed
    # The page's static files are installed with the gateway.
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in (target / "wordstream/gateway/static").iterdir()}
    assert not any((target / "wordstream" / name).is_symlink() for name in installed)  # real files, not links
    env = {**os.environ, "PYTHONPATH": str(target)}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for module in ("wordstream.server", "wordstream.client", "wordstream.gateway", "wordstream.training.evaluate"):
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
            [sys.executable, "-m", "wordstream.client", "health", "--server", f"localhost:{port}"],
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
    from wordstream.server.config import ENV_ONLY

    named = {
        f.name: f"WORDSTREAM_{f.name.upper()}" if f.name in ENV_ONLY else f"--{f.name.replace('_', '-')}"
        for f in fields(Settings)
    }
    missing = [name for name, shown in named.items() if f"`{shown}`" not in table]
    assert missing == [], missing


def test_compose_gateway_service_runs_the_gateway_through_envoy(monkeypatch: pytest.MonkeyPatch) -> None:
    from wordstream.gateway.__main__ import parser

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    gateway = services["gateway"]
    assert gateway["image"] == services["wordstream"]["image"]
    assert gateway["command"] == ["python", "-m", "wordstream.gateway"] and gateway["ports"] == ["127.0.0.1:8080:8080"]
    for name, value in gateway["environment"].items():
        monkeypatch.setenv(name, value)
    args = parser().parse_args([])
    assert args.port == 8080 and args.server == "envoy:50051"  # through the balancer, like any client
    assert "http://localhost:8080/healthz" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["depends_on"]["envoy"]["condition"] == "service_healthy"
