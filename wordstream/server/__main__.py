"""python -m wordstream.server [--port 50051] [--models models/] ...  (every flag also as WORDSTREAM_<NAME>)."""

from __future__ import annotations

import asyncio
import os
import sys

# gRPC's C core logs its own lines on stderr; keep only its errors so the logs stay JSON lines.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from wordstream.modelfile import ModelError  # noqa: E402
from wordstream.server.app import serve  # noqa: E402 (after the environment is set)
from wordstream.server.config import Settings  # noqa: E402
from wordstream.server.logs import configure  # noqa: E402


def main() -> int:
    try:
        settings = Settings.from_args()
    except ValueError as e:
        print(f"ValueError: {e}", file=sys.stderr)
        return 2
    configure(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except (ModelError, ValueError, OSError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
