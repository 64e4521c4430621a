"""The benchmark suite: `python -m bench.run` (or `make bench`); `--smoke` for tiny counts."""
