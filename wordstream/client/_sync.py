"""The blocking client: the asyncio client run on a private event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from wordstream.client import types as t
from wordstream.client._async import AsyncClient, AsyncSession, check_token_options
from wordstream.client.errors import Unavailable
from wordstream.client.protocol import ReplayCallback

T = TypeVar("T")


class Client:
    """A connection to a Wordstream server; the same options as :class:`AsyncClient`.

    with Client("localhost:50051") as client:
        with client.session() as session:
            result = session.push("great")
    """

    def __init__(self, target: str = "localhost:50051", **options: Any) -> None:
        check_token_options(target, options)  # before the loop thread starts
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wordstream-client", daemon=True)
        self._thread.start()
        self._async: AsyncClient = self._run(_make_client(target, options))
        self.target = target

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if not self._loop.is_running():
            coroutine.close()
            raise Unavailable("this client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._async.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def models(self) -> tuple[list[t.ModelInfo], str]:
        return self._run(self._async.models())

    def health(self, service: str = "") -> str:
        return self._run(self._async.health(service))

    def get_session(self, session_id: str, start: int = 0, end: int = 0) -> dict[str, Any]:
        return self._run(self._async.get_session(session_id, start, end))

    def close_session(self, session_id: str) -> None:
        self._run(self._async.close_session(session_id))

    def session(self, model: str = "", history: str = "delta", on_replay: ReplayCallback | None = None) -> Session:
        return Session(self, self._async.session(model, history, on_replay))

    def resume(self, session_id: str, history: str = "delta", on_replay: ReplayCallback | None = None) -> Session:
        return Session(self, self._async.resume(session_id, history, on_replay))


class Session:
    """The blocking face of :class:`AsyncSession`; opened on entering ``with``."""

    def __init__(self, client: Client, inner: AsyncSession) -> None:
        self._client = client
        self._inner = inner

    def __enter__(self) -> Session:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._client._run(self._inner.__aexit__(kind, e, tb))

    @property
    def id(self) -> str:
        return self._inner.id

    @property
    def replica(self) -> str:
        """The server answering this session now (its x-wordstream-replica header)."""
        return self._inner.replica

    @property
    def model(self) -> t.ModelInfo | None:
        return self._inner.model

    @property
    def labels(self) -> list[str]:
        return self._inner.labels

    @property
    def words(self) -> list[str]:
        return list(self._inner.words)

    @property
    def replays(self) -> int:
        return self._inner.replays

    @property
    def resent(self) -> int:
        """Words sent again on resumes because the server held fewer or other words than this client."""
        return self._inner.resent

    @property
    def history(self) -> list[t.Step]:
        return self._client._run(self._inner.history())

    def open(self) -> None:
        self._client._run(self._inner.open())

    def push(self, word: str) -> t.WordResult:
        return self._client._run(self._inner.push(word))

    def push_text(self, text: str) -> list[t.WordResult]:
        return self._client._run(self._inner.push_text(text))

    def rewind(self, words: int = 1) -> None:
        self._client._run(self._inner.rewind(words))

    def reset(self) -> None:
        self._client._run(self._inner.reset())

    def close(self) -> None:
        self._client._run(self._inner.close())

    def detach(self) -> None:
        """End the stream but keep the session on the server: resume it later by its id."""
        self._client._run(self._inner.detach())


async def _make_client(target: str, options: dict[str, Any]) -> AsyncClient:
    return AsyncClient(target, **options)  # the aio channel belongs to the loop it is made on
