"""python -m server [--port 50051] [--models models/] ...  (every flag also as WORDSTREAM_<NAME>)."""

from __future__ import annotations

import asyncio
import sys

from server.app import serve
from server.config import Settings
from server.errors import ModelError
from server.logs import configure


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
