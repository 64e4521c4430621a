"""The models a server serves: every valid model file of a directory. No torch here."""

from __future__ import annotations

import logging
from pathlib import Path

from wordstream.modelfile import ModelError, StepModel, load_model

log = logging.getLogger("wordstream.models")


def load_models(directory: Path, threads: int = 1) -> dict[str, StepModel]:
    """Every valid *.onnx in ``directory``; a bad file is logged with its fault and skipped."""
    if not directory.is_dir():
        raise ModelError(f"{directory}: models directory not found")
    models = {}
    for path in sorted(directory.glob("*.onnx")):
        try:
            models[path.stem] = load_model(path, threads)
        except ModelError as e:
            log.error("model refused", extra={"event": "model_refused", "error": str(e)})
            continue
        log.info("model loaded", extra={"event": "model_loaded", "model": path.stem, "cell": models[path.stem].cell})
    return models
