#!/usr/bin/env bash
# Build the ROS 2 packages that a robot's ROS install has but PyPI does not (tf2_ros, launch,
# launch_ros, vision_msgs, the `ros2` CLI and what they need) from the source snapshots in
# ../shared/ros-src into a virtual environment made from the ROS PyPI wheels, so that the node's
# paths through them are tested with the real packages instead of being skipped.
#
#   scripts/build_ros_tools.sh [VENV] [ROS_SRC]   (defaults: .venv, ../shared/ros-src)
#
# colcon builds them with a merged install whose prefix is VENV itself: the Python packages land
# in VENV's site-packages, libtf2.so and the type-support libraries in VENV/lib (where the
# wheels' library path already looks), package.xml / ament index entries in VENV/share (found with
# AMENT_PREFIX_PATH=VENV, which the wheels set), and `ros2` in VENV/bin. Nothing is copied into
# the repository. The build is cached: VENV/.seg_ros-ros-tools holds a digest of the archives,
# this script and the CMake fix-up; when it matches, a second run does nothing.
#
# Facts of building against the wheels (see ../shared/ros-src/README.md):
#  - colcon needs colcon-cmake, colcon-python-setup-py, colcon-package-selection (for
#    --packages-select); tf2 needs ament_cmake_ros (+ the gmock/gtest/pytest wheels its CMake
#    config requires); all of them are in requirements.txt.
#  - The wheels' exported CMake targets name their build machine's Python include folder:
#    scripts/pip_ros_fixups.cmake (CMAKE_PROJECT_INCLUDE) replaces such paths with this Python's.
#  - AMENT_PREFIX_PATH and CMAKE_PREFIX_PATH point at VENV ("No 'rosidl_typesupport_c' found"
#    otherwise); tests are not built (-DBUILD_TESTING=OFF).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${1:-$REPO/.venv}" && pwd)"
SRC_ARG="${2:-${ROS_SRC:-$REPO/../shared/ros-src}}"
[ -d "$SRC_ARG" ] || { echo "build_ros_tools: no ROS source snapshots at $SRC_ARG:" \
  "pass their folder as ROS_SRC=... (make) or the second argument" >&2; exit 1; }
SRC="$(cd "$SRC_ARG" && pwd)"
PY="$VENV/bin/python"
STAMP="$VENV/.seg_ros-ros-tools"
FIXUPS="$REPO/scripts/pip_ros_fixups.cmake"
ARCHIVES=(geometry2 launch launch_ros rcl_interfaces ros2cli rosidl_runtime_py vision_msgs)
PACKAGES=(
  tf2_msgs tf2 tf2_py tf2_ros_py                        # tf2_ros (Python) and what it needs
  composition_interfaces launch launch_xml launch_yaml launch_ros
  vision_msgs rosidl_runtime_py
  ros2cli ros2topic ros2node ros2param ros2lifecycle ros2service ros2run ros2pkg ros2launch
  ros2interface
)

digest() {
  { for a in "${ARCHIVES[@]}"; do sha256sum "$SRC/$a.tar.gz"; done
    sha256sum "${BASH_SOURCE[0]}" "$FIXUPS"; echo "$PY ${PACKAGES[*]}"; } \
    | sed "s#  .*/# #" | sha256sum | cut -d' ' -f1
}
for a in "${ARCHIVES[@]}"; do
  [ -f "$SRC/$a.tar.gz" ] || { echo "build_ros_tools: $SRC/$a.tar.gz missing" >&2; exit 1; }
done
WANT="$(digest)"
# One build per venv at a time (several `make test` at once): the others wait, then find it done.
exec 9>"$VENV/.seg_ros-ros-tools.lock"
flock 9
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "ROS tools already built into $VENV"
  exit 0
fi

command -v cmake >/dev/null || { echo "build_ros_tools: cmake not found: apt-get install cmake" >&2; exit 1; }
command -v c++ >/dev/null || { echo "build_ros_tools: no C++ compiler: apt-get install g++" >&2; exit 1; }
[ -x "$VENV/bin/ninja" ] || { echo "build_ros_tools: $VENV/bin/ninja missing: pip install -r requirements.txt" >&2; exit 1; }
"$PY" - <<'EOF' || exit 1
import importlib.util, sys
need = {"colcon_core": "colcon-core", "colcon_ros": "colcon-ros", "colcon_cmake": "colcon-cmake",
        "colcon_python_setup_py": "colcon-python-setup-py",
        "colcon_package_selection": "colcon-package-selection", "osrf_pycommon": "osrf-pycommon"}
missing = [pip for mod, pip in need.items() if importlib.util.find_spec(mod) is None]
if missing:
    sys.exit(f"build_ros_tools: {', '.join(missing)} missing from {sys.prefix}: "
             "pip install -r requirements.txt")
EOF

# One build folder per venv (a Kilted and a Jazzy venv do not share CMake caches).
WORK="$REPO/build/ros_tools/$(basename "$VENV")"
SRC_DIGEST="$(for a in "${ARCHIVES[@]}"; do sha256sum "$SRC/$a.tar.gz" | cut -d' ' -f1; done)"
if [ "$(cat "$WORK/src/.archives" 2>/dev/null)" != "$SRC_DIGEST" ]; then  # else: incremental
  rm -rf "$WORK/src"
  mkdir -p "$WORK/src"
  for a in "${ARCHIVES[@]}"; do tar -xzf "$SRC/$a.tar.gz" -C "$WORK/src"; done
  # launch_testing(_ros) are the CLI verbs' test dependencies only (not built: they would add
  # pytest plug-ins to the venv), but colcon's ament_python task wants every listed dependency
  sed -i '/<test_depend>launch_testing/d' "$WORK"/src/ros2cli/*/package.xml
  echo "$SRC_DIGEST" >"$WORK/src/.archives"
fi
rm -f "$STAMP"

export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
export PYTHONWARNINGS="ignore"          # setuptools' `setup.py install` deprecation, per package
START=$SECONDS
LOG="$WORK/colcon.log"
if ! "$VENV/bin/colcon" --log-base "$WORK/log" build \
    --base-paths "$WORK/src" --build-base "$WORK/build" \
    --install-base "$VENV" --merge-install \
    --packages-select "${PACKAGES[@]}" \
    --executor parallel --parallel-workers 2 \
    --event-handlers console_direct- console_start_end+ \
    --cmake-args -G Ninja -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_TESTING=OFF -DCMAKE_PROJECT_INCLUDE="$FIXUPS" \
      -DPython3_EXECUTABLE="$PY" -DPython3_FIND_VIRTUALENV=ONLY \
      -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/..;'"$VENV/lib" --log-level=WARNING \
    >"$LOG" 2>&1; then
  grep -E "^(Failed|Aborted)|[Ee]rror" "$LOG" | tail -n 12 >&2
  echo "build_ros_tools: colcon build failed; per-package logs under $WORK/log/latest_build" >&2
  exit 1
fi
grep -E "^(Finished|Summary)" "$LOG" | tr '\n' ' ' | sed 's/ $/\n/'
# Smoke test in a fresh interpreter (the bootstrapper re-execs it with the venv's lib path).
"$PY" -c "import tf2_ros, launch, launch_ros, vision_msgs.msg, ros2cli, rosidl_runtime_py" \
  || { echo "build_ros_tools: built, but the packages do not import; see $LOG" >&2; exit 1; }
"$VENV/bin/ros2" --help >/dev/null \
  || { echo "build_ros_tools: built, but $VENV/bin/ros2 does not run; see $LOG" >&2; exit 1; }
echo "$WANT" >"$STAMP"
echo "ROS tools built into $VENV in $((SECONDS - START)) s"
