from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import train_tiny

CELLS = ("rnn", "lstm", "gru")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny trained model per cell type (the LSTM with two layers), in one models directory."""
    directory = tmp_path_factory.mktemp("models")
    return {cell: train_tiny(cell, directory, layers=2 if cell == "lstm" else 1) for cell in CELLS}


class ServerThread:
    """A real server (server.app.start) on port 0, on an event loop in a background thread."""

    def __init__(self, settings: object) -> None:
        import asyncio
        import threading

        from server.app import start

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = self.call(start(settings))
        self.port = self.running.port
        self.target = f"localhost:{self.port}"
        self.service = self.running.service

    def call(self, coroutine):  # type: ignore[no-untyped-def]
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def stop(self, grace: float = 0.0) -> None:
        if self.loop.is_running():
            self.call(self.running.stop(grace))
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


@pytest.fixture
def make_server(tiny_models: dict[str, Path]):  # type: ignore[no-untyped-def]
    """Start servers with settings overrides; all are stopped after the test."""
    from server.config import Settings

    started: list[ServerThread] = []

    def make(**overrides: object) -> ServerThread:
        values = {
            "host": "localhost",
            "port": 0,
            "models": str(tiny_models["lstm"].parent),
            "default_model": "tiny-lstm",
            **overrides,
        }
        server = ServerThread(Settings(**values))  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server):  # type: ignore[no-untyped-def]
    return make_server()
