"""Domain errors. Each builds its own message; transport.py maps them to gRPC status codes.

ServiceError
├── RejectedRequest        the request is refused, the session is unchanged, the stream goes on
│   ├── BadWord            empty, whitespace, over the length limit, no tokens
│   ├── BadRewind          a count below 1 or past the start
│   ├── BadRange           a history range outside the history
│   ├── AlreadyOpen        open/resume on a stream that already has a session
│   ├── OpenHere           Multiplex: open/resume of a session already open on the stream
│   ├── NotOpenHere        Multiplex: an entry for a session not open on the stream
│   ├── TooManyEntries     Multiplex: a request with more entries than --multiplex-max-inflight
│   └── SessionLimit       the session is at its step or history-bytes limit
└── StreamRefused          the stream (or unary call) cannot go on
    ├── NotOpened          the first request is not open/resume
    ├── ModelNotFound
    ├── SessionNotFound    unknown, expired or closed
    │   ├── NotOwner       another token's session (its client is told "not found" all the same)
    │   └── SessionUnreadable  in the state store, but not readable here (model gone or changed)
    ├── SessionBusy        already attached to another stream
    ├── SessionExists      an open names (x-session-id) an id already in use
    ├── BadSessionId       an open names a malformed id
    ├── ServerFull         the live-session limit (or total history bytes) is reached
    ├── ShuttingDown
    ├── SessionMoved       another replica took the session over (--state-store): resume it
    └── StoreUnavailable   the session store cannot be reached: nothing was read, retry

(A model file that breaks its contract raises modelfile.ModelError, at start only.)
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service reports to a client."""


class RejectedRequest(ServiceError):
    pass


class BadWord(RejectedRequest):
    pass


class BadRewind(RejectedRequest):
    pass


class BadRange(RejectedRequest):
    pass


class AlreadyOpen(RejectedRequest):
    def __init__(self) -> None:
        super().__init__("this stream already has a session; open a new stream for another one")


class OpenHere(RejectedRequest):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {short_id(session_id)} is already open on this stream")


class NotOpenHere(RejectedRequest):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {short_id(session_id)} is not open on this stream: open or resume it first "
            "(a session whose entry was answered UNAVAILABLE must be resumed)"
        )


class TooManyEntries(RejectedRequest):
    def __init__(self, entries: int, limit: int) -> None:
        super().__init__(
            f"a request of {entries} entries is over this server's limit of {limit} in flight per stream; "
            "send fewer per request"
        )


class MalformedRequest(RejectedRequest):
    def __init__(self, detail: str) -> None:
        super().__init__(f"malformed request, not a valid message (bad protobuf or invalid UTF-8): {detail}")


class SessionLimit(RejectedRequest):
    pass


class StreamRefused(ServiceError):
    pass


class NotOpened(StreamRefused):
    def __init__(self, kind: str) -> None:
        super().__init__(f"the first request of a stream must be open or resume, got {kind or 'an empty request'}")


class ModelNotFound(StreamRefused):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; this server has {', '.join(sorted(known))}")


class SessionNotFound(StreamRefused):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {short_id(session_id)} not found (unknown, expired or closed)")
        self.session_id = session_id


class NotOwner(SessionNotFound):
    """A session that exists but belongs to another token: reported as not found, logged as an attempt."""


class SessionUnreadable(SessionNotFound):
    def __init__(self, session_id: str, why: str) -> None:
        StreamRefused.__init__(self, f"session {short_id(session_id)} cannot be read from the store: {why}")
        self.session_id = session_id


class SessionExists(StreamRefused):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {short_id(session_id)} already exists; choose another id or resume it")


class BadSessionId(StreamRefused):
    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed session id: {reason}")


class SessionBusy(StreamRefused):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {short_id(session_id)} is attached to another stream")


class ServerFull(StreamRefused):
    pass


class ShuttingDown(StreamRefused):
    def __init__(self) -> None:
        super().__init__("the server is shutting down; retry on another instance or after the restart")


class SessionMoved(StreamRefused):
    def __init__(self, session_id: str, detail: str) -> None:
        super().__init__(
            f"session {short_id(session_id)} is held by another replica now ({detail}); "
            "this stream's last request was not read: resume the session"
        )
        self.session_id = session_id


class StoreUnavailable(StreamRefused):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the session store is unreachable ({detail}); the request was not read and nothing was "
            "answered that is not durable: retry"
        )


def short_id(session_id: str) -> str:
    """The first characters of a session id: enough for logs and messages, useless to an attacker."""
    return session_id[:8] + "…" if len(session_id) > 8 else session_id
