from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CELLS, MakeServer, ServerThread, train_tiny


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny trained model per cell type (the LSTM with two layers), in one models directory."""
    directory = tmp_path_factory.mktemp("models")
    return {cell: train_tiny(cell, directory, layers=2 if cell == "lstm" else 1) for cell in CELLS}


@pytest.fixture
def make_server(tiny_models: dict[str, Path]) -> Iterator[MakeServer]:
    """Start servers with settings overrides; all are stopped after the test."""
    from wordstream.server.config import Settings

    started: list[ServerThread] = []

    def make(**overrides: object) -> ServerThread:
        values = {
            "host": "localhost",
            "port": 0,
            "models": str(tiny_models["lstm"].parent),
            "default_model": "tiny-lstm",
            **overrides,
        }
        server = ServerThread(Settings(**values))  # type: ignore[arg-type]  # overrides of any field
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: MakeServer) -> ServerThread:
    return make_server()
