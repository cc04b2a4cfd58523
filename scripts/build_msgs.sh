#!/usr/bin/env bash
# Build the seg_ros_msgs interface package (msg/) with rosidl/ament from PyPI wheels and install
# it into a virtual environment, so `from seg_ros_msgs.msg import SegmentationInfo` works there
# with no sourced setup files and no environment variables.
#
#   scripts/build_msgs.sh [VENV]      (default: .venv next to this repository)
#
# Installs: VENV/lib/python3.X/site-packages/seg_ros_msgs (Python + C extensions),
# VENV/lib/libseg_ros_msgs__*.so (found at run time through the LD_LIBRARY_PATH the
# ros-wheels-bootstrapper sets from VENV/lib), VENV/share/seg_ros_msgs (.msg, cmake, ament index).
# On a robot colcon builds msg/ as an ordinary ament_cmake package instead; this script is not used.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${1:-$REPO/.venv}" && pwd)"
PY="$VENV/bin/python"
BUILD="$REPO/build/seg_ros_msgs"
command -v cmake >/dev/null || { echo "build_msgs: cmake not found: apt-get install cmake" >&2; exit 1; }
[ -x "$VENV/bin/ninja" ] || { echo "build_msgs: $VENV/bin/ninja missing: pip install -r requirements.txt" >&2; exit 1; }

export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
# rosidl's generators run as `python -m ...` with the interpreter CMake finds: make it the venv's.
cmake -S "$REPO/msg" -B "$BUILD" -G Ninja \
  -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DCMAKE_PROJECT_INCLUDE="$REPO/scripts/pip_ros_fixups.cmake" \
  -DPython3_EXECUTABLE="$PY" -DPython3_FIND_VIRTUALENV=ONLY \
  -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/..;'"$VENV/lib" \
  -DBUILD_TESTING=OFF --log-level=WARNING >/dev/null
cmake --build "$BUILD" -- -j2 >/dev/null
cmake --install "$BUILD" >/dev/null
# Smoke test in a fresh interpreter (the bootstrapper re-execs it with the venv's lib path).
"$PY" -c "from seg_ros_msgs.msg import SegmentationInfo; SegmentationInfo()" \
  || { echo "build_msgs: seg_ros_msgs built but does not import; see $BUILD" >&2; exit 1; }
echo "seg_ros_msgs installed into $VENV"
