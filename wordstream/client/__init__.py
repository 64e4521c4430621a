"""The Wordstream Python client: ``from wordstream.client import Client, AsyncClient``.

It needs only grpcio and the generated stubs (no ONNX Runtime, no torch).
"""

from wordstream.client._async import AsyncClient, AsyncSession
from wordstream.client._sync import Client, Session
from wordstream.client.errors import (
    InsecureToken,
    InvalidRequest,
    LimitReached,
    NotFound,
    ServerError,
    SessionBusy,
    Unauthenticated,
    Unavailable,
    WordstreamError,
)
from wordstream.client.multiplex import Multiplexer
from wordstream.client.types import ModelInfo, Output, Step, Token, WordResult

__all__ = [
    "AsyncClient",
    "AsyncSession",
    "Multiplexer",
    "Client",
    "Session",
    "InsecureToken",
    "InvalidRequest",
    "LimitReached",
    "NotFound",
    "ServerError",
    "SessionBusy",
    "Unauthenticated",
    "Unavailable",
    "WordstreamError",
    "ModelInfo",
    "Output",
    "Step",
    "Token",
    "WordResult",
]
