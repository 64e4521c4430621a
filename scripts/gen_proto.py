"""Generate the Python code for proto/ into wordstream/ (the only way it is made).

python scripts/gen_proto.py           # write wordstream/v1/*_pb2*.py
python scripts/gen_proto.py --check   # exit 1 if the committed code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted((ROOT / "proto").rglob("*.proto"))
GENERATED = [
    "wordstream/v1/wordstream_pb2.py",
    "wordstream/v1/wordstream_pb2.pyi",
    "wordstream/v1/wordstream_pb2_grpc.py",
]


def generate(out: Path) -> None:
    args = ["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + [str(p) for p in PROTOS]) != 0:
        raise SystemExit("protoc failed")
    for package in ("wordstream", "wordstream/v1"):
        (out / package / "__init__.py").touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    if not parser.parse_args().check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [
            name
            for name in GENERATED
            if not (ROOT / name).exists() or not filecmp.cmp(Path(tmp, name), ROOT / name, shallow=False)
        ]
    if stale:
        print(f"stale generated code: {', '.join(stale)}; run: python scripts/gen_proto.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
