# The orchestrator's image: Ray 2.60, PyTorch 2.13, TensorFlow 2.21 (with tf-keras) and this package,
# running as the non-root user 1000 that the KubeRay manifests (k8s/, helm/) expect.
#   docker build -t ghcr.io/scaling-orchestrator/orchestrator:0.1.0 .
# Versions come from pyproject.toml; the base image is pinned to the Python the project is tested on.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    HOME=/home/ray

RUN groupadd --gid 1000 ray \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ray --shell /usr/sbin/nologin ray

WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
RUN pip install ".[all]"
COPY jobs ./jobs

USER 1000:1000
ENTRYPOINT []
CMD ["orchestrator", "--help"]
