# One image for every camcount role; the command picks the role (`camcount <role>`).
# GPU workers use the same image with the NVIDIA runtime: onnxruntime-gpu falls back to the
# CPU where no GPU is visible.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY infra infra
COPY ingest ingest
COPY balancer balancer
COPY workers workers
COPY registry registry
COPY broadcaster broadcaster
COPY videos videos
COPY simulator simulator
COPY camcount camcount
COPY migrations migrations
COPY dashboard dashboard
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* && pip install . && useradd --system --uid 10001 camcount \
    && install -d -o camcount -g camcount /var/lib/camcount/videos
# VIDEO_DIR in docker-compose.yml: a named volume mounted there starts out owned by camcount.
USER camcount
ENTRYPOINT ["camcount"]
