# The image of the GitHub Action (action.yml: `image: Dockerfile`).
#
# Base pinned by tag (readable) and digest (reproducible). The digest is the
# multi-platform index digest; refresh it with
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# (or let Dependabot's docker ecosystem propose updates).
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS base

# -- build: the runtime dependencies, from the hash-pinned lock, into a venv --------
FROM base AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
# --require-hashes: every distribution checked against the lock; --only-binary: no
# compiler, no unpinned build backends pulled in by an sdist.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: --no-deps \
      -r /tmp/requirements.lock

# -- runtime: the venv and the package source, nothing else ----------------------
FROM base
COPY --from=build /opt/venv /opt/venv
COPY indexer /app/indexer
# The version's one source (indexer/__init__.py reads it: the package is not installed here).
COPY pyproject.toml /app/pyproject.toml
# Bytecode made once here: PYTHONDONTWRITEBYTECODE below keeps runs from writing it,
# so without this every run would compile the package again (~50 ms of CPU).
RUN /opt/venv/bin/python -m compileall -q /app/indexer
# Unbuffered so log lines and ::workflow commands:: keep their order.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# No USER: GitHub runs Docker actions as root and mounts the workspace and the
# file-command files owned by the runner; another user could not write to them.
# Exec form straight into Python: a shell would drop INPUT_GITHUB-TOKEN and the
# other hyphenated input variables.
ENTRYPOINT ["/opt/venv/bin/python", "-m", "indexer.action"]
