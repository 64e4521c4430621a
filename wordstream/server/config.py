"""Server settings: one typed object, fed from flags and WORDSTREAM_* environment variables.

Precedence: flag, then environment variable, then the default below.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from wordstream.shared import parse_bool


@dataclass(frozen=True)
class Settings:
    host: str = "localhost"
    """Address to listen on: loopback by default; "[::]" (or 0.0.0.0) for every interface, as in a container."""
    port: int = 50051
    """Port to listen on; 0 picks a free one (tests)."""
    models: str = "models"
    """Directory whose *.onnx files are served, each under its file name without .onnx."""
    default_model: str = "sentiment-lstm"
    """Model used when an open request names none."""
    threads: int = 1
    """ONNX Runtime intra-op threads per model call."""
    idle_timeout: float = 600.0
    """Seconds a session with no attached stream lives after its last request."""
    reap_interval: float = 5.0
    """Seconds between two sweeps of the expiry reaper."""
    max_sessions: int = 10000
    """Live sessions; beyond it new sessions are refused with RESOURCE_EXHAUSTED."""
    max_steps: int = 10000
    """Steps (tokens) per session."""
    max_word_chars: int = 100
    """Characters in one word."""
    max_session_bytes: int = 16 * 2**20
    """Bytes of history (outputs and states) per session."""
    max_total_bytes: int = 2 * 2**30
    """Bytes of history across all sessions."""
    max_message_bytes: int = 64 * 2**10
    """Largest request message the server accepts."""
    batching: bool = True
    """Cross-session micro-batching of model calls (false: one model call per step, for comparison)."""
    max_batch: int = 256
    """Most steps in one model call."""
    max_wait: float = 0.0
    """Seconds a step may wait for others to join its batch; 0: it runs as soon as a call can start."""
    metrics_port: int = -1
    """Port of the Prometheus endpoint; -1 turns it off, 0 picks a free port."""
    metrics_host: str = "localhost"
    """Address of the Prometheus endpoint: loopback by default; 0.0.0.0 for a scraper outside the host."""
    drain: float = 0.0
    """Seconds health reports NOT_SERVING on SIGTERM/SIGINT while everything is still served (behind a balancer: 2)."""
    grace: float = 5.0
    """Seconds after the drain that streams still open get before they are cancelled."""
    state_dir: str = ""
    """Directory where live sessions are saved on shutdown and restored from on start; empty: off."""
    state_store: str = ""
    """Redis URL holding every session, written before each answer: redis://host:port/db or unix:///path.sock
    (one Redis), redis-cluster://[user:password@]host:port[,host:port...] (a Redis Cluster's seed nodes)."""
    state_store_password_file: str = ""
    """File whose first line is the state store's password (else WORDSTREAM_STATE_STORE_PASSWORD, else the URL's)."""
    state_store_password: str = field(default="", repr=False)
    """The state store's password, from the environment only (WORDSTREAM_STATE_STORE_PASSWORD): never a flag."""
    store_timeout: float = 5.0
    """Seconds a state-store call whose outcome is unknown (a dropped connection, a failover) is sent
    again before the request is refused with UNAVAILABLE."""
    store_replicas: int = 0
    """Replicas of its Redis primary that must acknowledge each word (WAIT) before it is answered; 0: none."""
    store_check_interval: float = 0.5
    """Seconds between two checks that the state store answers (health is NOT_SERVING while it does not)."""
    tokens: str = ""
    """Comma-separated bearer tokens that may call the service; empty (and no tokens_file): no authentication."""
    tokens_file: str = ""
    """File with one accepted bearer token per line (joins --tokens)."""
    tls_cert: str = ""
    """PEM certificate chain for TLS (with --tls-key); empty: plaintext."""
    tls_key: str = ""
    """PEM private key for TLS."""
    max_streams_per_connection: int = 1000
    """Concurrent streams one client connection may hold."""
    multiplex_max_inflight: int = 1000
    """Entries one Multiplex stream may have read and not yet answered; the stream is not read further meanwhile."""
    """Concurrent streams one client connection may hold."""
    replica_name: str = ""
    """This server's name in the x-wordstream-replica header of every answer; empty: the host name."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for name in (
            "threads",
            "max_sessions",
            "max_steps",
            "max_word_chars",
            "max_session_bytes",
            "max_total_bytes",
            "max_message_bytes",
            "multiplex_max_inflight",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        for name in ("idle_timeout", "reap_interval", "grace"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both tls_cert and tls_key")
        if self.state_store:
            if not self.state_store.startswith(("redis://", "rediss://", "unix://", "redis-cluster://")):
                raise ValueError(
                    "state_store must be a redis://host:port/db or unix:///path.sock URL (one Redis) or redis-cluster://"
                    f"host:port[,host:port...] (a Redis Cluster), got {without_password(self.state_store)!r}"
                )
            if self.state_dir:
                raise ValueError("state_store and state_dir are alternatives: with a state store, sessions are in it")
        if self.store_replicas < 0:
            raise ValueError(f"store_replicas must be 0 or more, got {self.store_replicas}")
        if self.store_replicas and not self.state_store:
            raise ValueError("store_replicas needs a state store (--state-store) to wait for")
        if self.store_timeout <= 0:
            raise ValueError(f"store_timeout must be positive, got {self.store_timeout}")
        if self.store_check_interval <= 0:
            raise ValueError(f"store_check_interval must be positive, got {self.store_check_interval}")
        if self.drain < 0:
            raise ValueError(f"drain must be 0 or more, got {self.drain}")
        if self.max_wait < 0:
            raise ValueError(f"max_wait must be 0 or more, got {self.max_wait}")

    def store_password(self) -> str | None:
        """The state store's password: --state-store-password-file, else WORDSTREAM_STATE_STORE_PASSWORD,
        else None (a password in the URL itself is the URL's)."""
        if self.state_store_password_file:
            with open(self.state_store_password_file, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n") or None
        return self.state_store_password or None

    def accepted_tokens(self) -> frozenset[str]:
        """Every accepted bearer token (empty: authentication is off)."""
        tokens = [t.strip() for t in self.tokens.split(",")]
        if self.tokens_file:
            with open(self.tokens_file, encoding="utf-8") as f:
                tokens += [line.strip() for line in f if line.strip() and not line.startswith("#")]
        return frozenset(t for t in tokens if t)

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        parser = argparse.ArgumentParser(prog="python -m wordstream.server", description="The Wordstream gRPC server.")
        docs = _field_docs()
        for setting in fields(cls):
            if setting.name in ENV_ONLY:
                continue  # a secret: a flag would show it in every process list
            env = f"WORDSTREAM_{setting.name.upper()}"
            parser.add_argument(
                f"--{setting.name.replace('_', '-')}",
                dest=setting.name,
                default=None,
                help=f"{docs.get(setting.name, '')} Env {env}; default {setting.default}.",
            )
        args = parser.parse_args(argv)
        values: dict[str, Any] = {}
        for setting in fields(cls):
            raw = getattr(args, setting.name, None)
            if raw is None:
                raw = environ.get(f"WORDSTREAM_{setting.name.upper()}")
            if raw is not None:
                try:
                    convert: Callable[[str], Any] = (
                        parse_bool if isinstance(setting.default, bool) else type(setting.default)
                    )
                    values[setting.name] = convert(raw)
                except ValueError:
                    parser.error(
                        f"--{setting.name.replace('_', '-')}: expected {type(setting.default).__name__}, got {raw!r}"
                    )
        return cls(**values)


ENV_ONLY = frozenset({"state_store_password"})  # settings read from the environment only


def _field_docs() -> dict[str, str]:
    """The docstring under each field (kept in the class source), for --help."""
    import inspect

    lines = inspect.getsource(Settings).splitlines()
    docs = {}
    for line, below in zip(lines, lines[1:]):
        name = line.strip().split(":", 1)[0]
        if ":" in line and name.isidentifier() and below.strip().startswith('"""'):
            docs[name] = below.strip().strip('"')
    return docs


def without_password(url: str) -> str:
    """A store URL as logs and messages may show it: any password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not sep or not at:
        return url
    user = credentials.split(":", 1)[0] if ":" in credentials else ""
    return f"{scheme}{sep}{user}:***@{place}"
