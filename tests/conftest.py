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
