"""The model file (docs/MODEL-FORMAT.md): its contract and the one way to run it.

Imported by training (which writes such files through ModelMetadata), by evaluation, the
server and the benchmarks (which read them). No torch, no grpc.
"""

from wordstream.modelfile.contract import FORMAT_ID, ModelError
from wordstream.modelfile.metadata import DataSource, Evaluation, ModelMetadata
from wordstream.modelfile.runtime import StateBatch, StateSpec, StepModel, load_model

__all__ = [
    "FORMAT_ID",
    "DataSource",
    "Evaluation",
    "ModelError",
    "ModelMetadata",
    "StateBatch",
    "StateSpec",
    "StepModel",
    "load_model",
]
