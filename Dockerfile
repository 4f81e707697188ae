# syntax=docker/dockerfile:1
# The training image: `docker build -t multimodal-training .` (see README, "The container").
#
# Base: the official Python 3.11 image (the Python the stack is verified on). PyTorch comes from
# requirements.txt (torch==2.13.0): its Linux wheel is the CUDA 13.0 build and pins the CUDA
# runtime, cuDNN and NCCL it needs as wheels, so the image carries exactly one, pinned, CUDA
# runtime and runs on CPU as well; the host supplies only the NVIDIA driver (>= 580 for CUDA 13).
# A CUDA base image would add a second CUDA runtime that torch never loads.
FROM python:3.11.13-slim-bookworm

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
COPY --chmod=755 docker/train /usr/local/bin/train
RUN mkdir -p /opt/ml \
    && ln -s ${PROGRAM_DIR} /opt/ml/code

WORKDIR ${PROGRAM_DIR}
CMD ["train"]
