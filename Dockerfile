# The Wordstream server with the default models: no torch, a non-root user, a gRPC health check.
# The same steps as the README's `make serve`: install '.[serve]', then `python -m wordstream.server`.
# The same image runs the gateway and its page (compose's `gateway`: python -m wordstream.gateway).
#
# Stage 1 builds the wheel with the hot path compiled by mypyc (setup.py; the full image has a C
# compiler, the slim one has none): the build fails if no module was compiled.
FROM python:3.11 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY wordstream ./wordstream
RUN WORDSTREAM_COMPILE=1 pip wheel --no-deps --wheel-dir /wheels . \
    && python -c "import glob, sys, zipfile; names = zipfile.ZipFile(glob.glob('/wheels/*.whl')[0]).namelist(); sys.exit(0 if any(n.endswith('.so') for n in names) else 'no compiled module in the wheel')"

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY --from=build /wheels /wheels
RUN pip install "$(ls /wheels/wordstream-*.whl)[serve,gateway]" && rm -rf /wheels \
    && useradd --create-home --uid 10001 wordstream \
    && mkdir -p /app/state && chown wordstream /app/state
COPY models ./models

USER wordstream
EXPOSE 50051
# Inside a container the server listens on every interface of the container's own network; the
# host publishes only what compose or k8s says (loopback by default: docker-compose.yml).
ENV WORDSTREAM_HOST=[::] WORDSTREAM_PORT=50051 WORDSTREAM_MODELS=/app/models WORDSTREAM_STATE_DIR=/app/state
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "wordstream.client", "health", "--server", "localhost:50051"]
CMD ["python", "-m", "wordstream.server"]
