# The training image: `make image`, or `docker build -t multimodal-training:0.1.0 .` (docs/container.md).
#
# Base: the official PyTorch runtime image of the torch release pinned in requirements.txt
# (torch 2.13.0, CUDA 13.0, cuDNN 9). Its torch satisfies `torch==2.13.0`, so pip keeps it and the
# image carries one CUDA runtime. The host needs an NVIDIA driver that supports CUDA 13 (>= 580).
# For hosts whose driver is older than 580, build from a CUDA 12.x tag of the same release:
#   docker build --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime .
# (check on Docker Hub that the tag exists for the release; the CUDA variants differ between releases).
# Without a GPU it runs on CPU. The container tests build it FROM a CPU stand-in (docker/standin/).
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}

# NVIDIA_*: what the NVIDIA container runtime exposes to the container (as in NVIDIA's CUDA images).
ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PROGRAM_DIR=/opt/program

# Dependencies before code: this layer is rebuilt only when requirements.txt changes. Every
# requirement is a wheel, so no compiler is installed, and pip keeps no cache.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code lives outside /opt/ml so that `docker run -v HOST_DIR:/opt/ml` cannot hide it;
# /opt/ml/code points at it, so SageMaker's layout (code/ with hyperparams/) holds as well.
COPY pytorch_training.py ${PROGRAM_DIR}/
COPY contracts/ ${PROGRAM_DIR}/contracts/
COPY hyperparams/ ${PROGRAM_DIR}/hyperparams/
COPY processing/ ${PROGRAM_DIR}/processing/
COPY models/ ${PROGRAM_DIR}/models/
COPY training/ ${PROGRAM_DIR}/training/
COPY evaluation/ ${PROGRAM_DIR}/evaluation/
COPY export/ ${PROGRAM_DIR}/export/
COPY inference/ ${PROGRAM_DIR}/inference/
COPY job/ ${PROGRAM_DIR}/job/
COPY serving/ ${PROGRAM_DIR}/serving/
COPY --chmod=755 docker/train /usr/local/bin/train
COPY --chmod=755 docker/serve /usr/local/bin/serve
RUN mkdir -p /opt/ml \
    && ln -s ${PROGRAM_DIR} /opt/ml/code

WORKDIR ${PROGRAM_DIR}
# `serve` (an endpoint, a batch transform) listens on 8080, or on the port SageMaker names in
# SAGEMAKER_BIND_TO_PORT, which this label allows.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
EXPOSE 8080
CMD ["train"]
