# The workbench predictor image: `workbench serve` on port 8080, serving the model that KServe's storage
# initializer puts in /mnt/models (see manifests/workbench-predictor-gpu.yaml and docs/deploy.md).
#
#   CPU: docker build -t REGISTRY/workbench/predictor:0.1.0 .
#   GPU: docker build -t REGISTRY/workbench/predictor:0.1.0-gpu \
#            --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# GPU choice: PyTorch's CUDA wheels (pip's CUDA wheel index) on the same slim Python base, rather than an
# official pytorch/pytorch CUDA base image. The CUDA wheels bring their own CUDA runtime and cuDNN as pip
# packages, so the node needs only the NVIDIA driver and device plugin; torch stays at the version this
# project pins (pyproject.toml) in both variants; and one Dockerfile builds both. Pick the cuXXX index that
# download.pytorch.org lists for this torch version and your driver (e.g. cu126, cu128, cu130).
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/tmp/hf-home

# torch first, from the CPU or CUDA index; `pip install .` then finds it already satisfied.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==2.13.0"

WORKDIR /opt/workbench
COPY pyproject.toml README.md ./
COPY workbench ./workbench
COPY conformance ./conformance
RUN pip install . \
    && useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin workbench

# Non-root, as KServe's own runtimes run (runAsNonRoot); the model directory is mounted read-only.
USER 1000
EXPOSE 8080 8081
# No ENTRYPOINT: InferenceService manifests pass the whole `workbench serve ...` command as args.
CMD ["workbench", "serve", "--model_dir", "/mnt/models", "--http_port", "8080"]
