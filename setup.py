"""The build's one decision pyproject.toml cannot state: which modules are compiled.

The hot path (answers, history, sessions, batching, the state bank, the service's word path, the
session registry and the text codec) is compiled
with mypyc (it ships with mypy; the code is `mypy --strict` clean) in wheel installs (`pip
install .`, the Dockerfile) and whenever WORDSTREAM_COMPILE=1. Editable installs (`make setup`,
`make quick`) stay pure Python, so an edit is never shadowed by a stale .so, and so does any build
with WORDSTREAM_COMPILE=0. Where compiling fails (no C compiler, no mypy) the pure modules are
installed unchanged: the package is the same either way, only slower.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HOT = [
    "wordstream/server/answers.py",
    "wordstream/server/history.py",
    "wordstream/server/sessions.py",
    "wordstream/server/batching.py",
    "wordstream/server/statebank.py",
    "wordstream/server/service.py",  # the servicer's word path (the domain side; transport.py is grpc's)
    "wordstream/server/multiplex.py",  # a Multiplex stream's entries (its async generator is transport.py's)
    "wordstream/server/store.py",
    "wordstream/textcodec/tokenizer.py",
    "wordstream/textcodec/codec.py",
    "wordstream/textcodec/vocab.py",
]


def compiling() -> bool:
    choice = os.environ.get("WORDSTREAM_COMPILE", "")
    if choice == "0" or "editable_wheel" in sys.argv or "develop" in sys.argv:
        return False
    return choice == "1" or "bdist_wheel" in sys.argv or "build_ext" in sys.argv


def extensions() -> list[Any]:
    if not compiling():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("wordstream: mypy (mypyc) is not installed: the pure Python modules are installed", file=sys.stderr)
        return []
    # The shared library mypyc builds beside the modules lives inside the package (wordstream/_hot__mypyc).
    return list(mypycify(HOT, opt_level="3", group_name="wordstream._hot"))


class OptionalBuildExt(build_ext):
    """Compile what can be compiled; on any failure, keep none of it (a module's .so needs the
    shared library mypyc builds with it) and install the pure modules."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # a missing or failing C compiler raises its own types
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            print(f"wordstream: compiling the hot modules failed ({e}); installing pure Python", file=sys.stderr)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
