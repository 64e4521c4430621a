"""The model file (docs/MODEL-FORMAT.md): its contract and the one way to run it.

Imported by export (which writes such files), by evaluation and by the server (which read
them). No torch, no grpc.
"""

from wordstream.modelfile.contract import FORMAT_ID, ModelError
from wordstream.modelfile.runtime import StateBatch, StateSpec, StepModel, load_model

__all__ = ["FORMAT_ID", "ModelError", "StateBatch", "StateSpec", "StepModel", "load_model"]
