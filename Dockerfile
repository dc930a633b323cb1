# One image for Vigil's worker, recorder and API (docker-compose.yml picks the command).
FROM python:3.11-slim
# jemalloc: the worker's watchdog starts the worker on it (vigil_runtime/allocator.py says why).
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
COPY vigil vigil
COPY vigil_runtime vigil_runtime
COPY streams streams
COPY services services
COPY deploy deploy
COPY sdk sdk
RUN pip install --no-cache-dir . ./sdk[kafka]
USER nobody
ENTRYPOINT ["vigil"]
