"""Building and running the server: the service, health and reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from wordstream.server.auth import TokenAuth
from wordstream.server.config import Settings
from wordstream.server.inference import load_models
from wordstream.server.ledger import Ledger
from wordstream.server.local_ledger import LocalLedger
from wordstream.server.registration import add_to_server
from wordstream.server.service import Wordstream
from wordstream.server.store import SessionStore
from wordstream.server.transport import WordstreamServicer
from wordstream.v1 import wordstream_pb2 as pb

log = logging.getLogger("wordstream.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Wordstream"].full_name


@dataclass
class Running:
    """A started server: the gRPC server, its real port, the service and the health servicer."""

    server: grpc.aio.Server
    port: int
    service: Wordstream
    health: health.HealthServicer
    reaper: asyncio.Task[None]
    metrics_port: int | None = None  # the Prometheus endpoint's port, when it is on
    watch: asyncio.Task[None] | None = None  # the ledger's health watch, when it can stop answering
    draining: bool = False

    def set_serving(self, serving: bool) -> None:
        """Health for the balancer: SERVING only while not draining (and the ledger answers)."""
        serving = serving and not self.draining
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    async def watch_store(self) -> None:
        """NOT_SERVING while the ledger does not answer, SERVING again when it does."""
        ledger = self.service.ledger
        up = True
        while True:
            now_up = await ledger.healthy()
            if now_up != up:
                log.warning(
                    "state store " + ("back" if now_up else "unreachable"),
                    extra={"event": "store_up" if now_up else "store_down", "store": ledger.description},
                )
                up = now_up
                self.set_serving(up)
            await asyncio.sleep(self.service.settings.store_check_interval)

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Shut down in the order a load balancer needs (the README's "Shutting down" says the same):

        1. health goes NOT_SERVING while everything is still served, for ``drain`` seconds, so
           health checks see it and send new sessions elsewhere;
        2. new streams are refused with UNAVAILABLE; streams already open are still answered
           for ``grace`` seconds, so words in flight are not lost;
        3. streams still open then are cancelled (their clients resume elsewhere or after the
           restart); the sessions are saved (with --state-dir) and the server is gone.
        """
        settings = self.service.settings
        grace = settings.grace if grace is None else grace
        drain = settings.drain if drain is None else drain
        self.draining = True
        self.set_serving(False)
        log.info(
            "draining",
            extra={"event": "drain", "drain": drain, "grace": grace, "sessions": len(self.service.store)},
        )
        if drain > 0:
            await asyncio.sleep(drain)
        self.service.accepting = False
        log.info("shutting down", extra={"event": "shutdown", "grace": grace, "sessions": len(self.service.store)})
        self.reaper.cancel()
        if self.watch:
            self.watch.cancel()
        await self.server.stop(grace)
        await self.service.ledger.stop(self.service.store)  # every stream has ended: the sessions are quiet
        self.service.metrics.stop()


def ledger_for(settings: Settings) -> Ledger:
    """Where sessions are kept: Redis with --state-store, else memory (with --state-dir's snapshot)."""
    store = settings.state_store, settings.idle_timeout, settings.store_timeout, settings.store_password()
    if settings.state_store.startswith("redis-cluster://"):
        from wordstream.server.cluster_ledger import RedisClusterLedger  # redis is imported only when used

        return RedisClusterLedger(*store, replicas=settings.store_replicas)
    if settings.state_store:
        from wordstream.server.redis_ledger import RedisLedger

        return RedisLedger(*store, replicas=settings.store_replicas)
    return LocalLedger(settings.state_dir)


def grpc_options(settings: Settings) -> list[tuple[str, int]]:
    """The gRPC server's channel options (the benchmark's peers use the same)."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        # Notice dead clients, so their sessions detach and become resumable elsewhere.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        # A balancer keeps idle connections to the replica alive with pings (deploy/envoy.yaml: every
        # 30 s); without this, pings on a connection with no call count as abuse and end it.
        ("grpc.keepalive_permit_without_calls", 1),
    ]


async def start(settings: Settings) -> Running:
    """Load the models, bind ``host:port`` (port 0 picks a free one) and start serving."""
    models = load_models(Path(settings.models), settings.threads)
    ledger = ledger_for(settings)
    service = Wordstream(settings, models, SessionStore(settings), ledger=ledger)
    await ledger.start(service.store, models)
    tokens = settings.accepted_tokens()
    server = grpc.aio.server(interceptors=[TokenAuth(tokens)] if tokens else [], options=grpc_options(settings))
    replica = settings.replica_name or socket.gethostname()
    add_to_server(WordstreamServicer(service, authenticate=bool(tokens), replica=replica), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    if settings.tls_cert:
        credentials = grpc.ssl_server_credentials(
            [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    await server.start()
    reaper = asyncio.create_task(service.reap_forever(), name="reaper")
    metrics_port = (
        service.metrics.serve(settings.metrics_port, settings.metrics_host) if settings.metrics_port >= 0 else None
    )
    running = Running(server, port, service, health_servicer, reaper, metrics_port)
    running.set_serving(await ledger.healthy())
    if ledger.watched:
        running.watch = asyncio.create_task(running.watch_store(), name="store-watch")
    log.info(
        "serving",
        extra={
            "event": "start",
            "port": port,
            "models": sorted(models),
            "default_model": service.default_model,
            "metrics_port": metrics_port,
            "batching": settings.batching,
            "sessions_kept_in": ledger.description,
        },
    )
    return running


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"wordstream: serving {sorted(running.service.models)} on port {running.port} "
        f"(default model {running.service.default_model}); try: python -m wordstream.client stream 'a fine film'",
        flush=True,
    )
    await stop.wait()
    await running.stop()
