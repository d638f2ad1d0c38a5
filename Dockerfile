# nowplaying: one image for every role (topics/train init, worker, api, replay).
#   docker build -t nowplaying .
#   docker run --rm nowplaying --help
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# libgomp1: LightGBM's OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first (cached while only the code changes), pinned by constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p nowplaying && touch nowplaying/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall -y nowplaying

# The runtime only; the development tooling (devtools/, scripts/, infra/) and tests never ship.
COPY nowplaying ./nowplaying
COPY features ./features
COPY models ./models
COPY streams ./streams
COPY serving ./serving
COPY schemas ./schemas
RUN pip install --no-deps -c constraints.txt .


FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 nowplaying \
    && useradd --system --uid 10001 --gid nowplaying --home-dir /app --shell /usr/sbin/nologin nowplaying \
    && mkdir -p /app/var/models /data \
    && chown -R nowplaying:nowplaying /app

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NP_MODEL_DIR=/app/var/models \
    NP_DATA_DIR=/data

WORKDIR /app
USER nowplaying
EXPOSE 8000 8001
ENTRYPOINT ["nowplaying"]
CMD ["--help"]
