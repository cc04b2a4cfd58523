#!/usr/bin/env bash
# Generate seg_ros's interface (msg/*.msg -> seg_ros.msg) with rosidl/ament from the PyPI wheels
# for a virtual environment in which seg_ros itself is an editable install, so that
# `from seg_ros.msg import SegmentationInfo` works there with no sourced setup files.
#
#   scripts/build_msgs.sh [VENV]      (default: .venv next to this repository)
#
# It configures the repository's own CMakeLists.txt (the one colcon builds on a robot) with
# SEG_ROS_INSTALL_PYTHON=OFF and installs into VENV:
#   VENV/lib/libseg_ros__*.so        type-support libraries (on the LD_LIBRARY_PATH that the
#                                    ros-wheels-bootstrapper sets from VENV/lib)
#   VENV/share/seg_ros, VENV/share/ament_index/...   package.xml, launch/, config/, models/, the
#                                    ament index entry (found with AMENT_PREFIX_PATH=VENV)
#   VENV/lib/seg_ros/segmentation_node   the executable launch_ros / `ros2 run` look for
#   seg_ros/msg/, seg_ros/*.so       the generated Python modules and their C extensions, next
#                                    to the editable sources (git-ignored build outputs): a
#                                    second seg_ros folder in site-packages would shadow them.
#                                    For another venv than the default .venv (e.g. .venv-jazzy,
#                                    other ROS wheels) they go to VENV/seg_ros-interface/seg_ros,
#                                    which seg_ros/__init__.py searches first in that venv.
# On a robot colcon builds and installs the same CMakeLists.txt; this script is not used there.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${1:-$REPO/.venv}" && pwd)"
PY="$VENV/bin/python"
NAME="$(basename "$VENV")"
if [ "$VENV" = "$REPO/.venv" ]; then
  BUILD="$REPO/build/seg_ros_interface"; GEN="$REPO/seg_ros"
else
  BUILD="$REPO/build/seg_ros_interface${NAME#.venv}"; GEN="$VENV/seg_ros-interface/seg_ros"
fi
PYSTAGE="$BUILD/python"
command -v cmake >/dev/null || { echo "build_msgs: cmake not found: apt-get install cmake" >&2; exit 1; }
command -v c++ >/dev/null || { echo "build_msgs: no C++ compiler: apt-get install g++" >&2; exit 1; }
[ -x "$VENV/bin/ninja" ] || { echo "build_msgs: $VENV/bin/ninja missing: pip install -r requirements.txt" >&2; exit 1; }

export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
# rosidl's generators run as `python -m ...` with the interpreter CMake finds: make it the venv's.
cmake -S "$REPO" -B "$BUILD" -G Ninja \
  -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPYTHON_INSTALL_DIR="$PYSTAGE" \
  -DSEG_ROS_INSTALL_PYTHON=OFF \
  -DPython3_EXECUTABLE="$PY" -DPython3_FIND_VIRTUALENV=ONLY \
  -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/..;'"$VENV/lib" \
  -DBUILD_TESTING=OFF --log-level=WARNING >/dev/null
cmake --build "$BUILD" -- -j2 >/dev/null
rm -rf "$PYSTAGE"
cmake --install "$BUILD" >/dev/null
mkdir -p "$GEN"
rm -rf "$GEN/msg" "$GEN"/seg_ros_s__*.so
# the interface's former separate package (seg_ros_msgs), left by an older set-up
rm -rf "$VENV"/lib/python3*/site-packages/seg_ros_msgs* "$VENV/share/seg_ros_msgs" \
  "$VENV"/lib/libseg_ros_msgs__*.so "$VENV/share/ament_index/resource_index/packages/seg_ros_msgs"
cp -r "$PYSTAGE/seg_ros/msg" "$GEN/msg"
rm -f "$GEN"/msg/*.c
cp "$PYSTAGE"/seg_ros/seg_ros_s__*.so "$GEN/"
# Smoke test in a fresh interpreter (the bootstrapper re-execs it with the venv's lib path).
"$PY" -c "from seg_ros.msg import SegmentationInfo; SegmentationInfo()" \
  || { echo "build_msgs: seg_ros.msg built but does not import; see $BUILD" >&2; exit 1; }
echo "seg_ros interface installed for $VENV"
