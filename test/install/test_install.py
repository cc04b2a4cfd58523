"""The package as a robot installs it, with the real ROS 2 tools.

* colcon (colcon-core + colcon-ros from PyPI) builds a workspace holding a clean copy of the
  repository in src/ with a plain ``colcon build``; the node module and the interface import
  from the install space, and the installed node publishes ``~/label_info``.
* rosdep resolves every key of package.xml for Humble (Ubuntu 22.04, JetPack 6), Jazzy and
  Kilted (24.04) and Lyrical (26.04) against rule files trimmed verbatim from ros/rosdistro
  (test/data/rosdistro), and package.xml uses exactly the keys listed in rosdep/keys.yaml.

The ROS underlay is this venv (ROS 2 Kilted from PyPI wheels), exported as a sourced
/opt/ros/kilted would be: PATH, AMENT_PREFIX_PATH and CMAKE_PREFIX_PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seg_ros.live import pick_domain
from seg_ros.ros.dds import local_env

REPO = Path(__file__).resolve().parents[2]
KEYS = yaml.safe_load((REPO / "rosdep" / "keys.yaml").read_text())
ROSDISTRO = REPO / "test" / "data" / "rosdistro"
BIN = Path(sys.executable).parent
DOMAIN = pick_domain()


def underlay_env() -> dict[str, str]:
    """This process's environment with the venv as the sourced ROS underlay."""
    env = dict(os.environ)
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=sys.prefix,
               AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix)
    for leftover in ("COLCON_PREFIX_PATH", "PYTHONPATH"):
        env.pop(leftover, None)
    return env


def clean_copy(dest: Path) -> None:
    """The files a clone of the working tree has: tracked and new, none that git ignores."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, check=True, capture_output=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the work tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def sourced(ws: Path, *argv: str) -> list[str]:
    """``argv`` run after sourcing the workspace's install/setup.sh, as a user's shell would."""
    return ["sh", "-c", '. "$0" && exec "$@"', str(ws / "install" / "setup.sh"), *argv]


def in_install(ws: Path, *argv: str, timeout: float) -> subprocess.CompletedProcess:
    """``argv`` run to completion in the sourced install space."""
    return subprocess.run(sourced(ws, *argv), cwd=ws, env=local_env(DOMAIN, underlay_env()),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A colcon workspace, src/seg_ros a clean copy of this repository, after `colcon build`."""
    for tool in ("cmake", "c++", "git"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install cmake g++ git)")
    if not (BIN / "colcon").exists():
        pytest.skip("colcon not in the venv: pip install -r requirements.txt")
    ws = tmp_path_factory.mktemp("ws")
    clean_copy(ws / "src" / "seg_ros")
    built = subprocess.run([str(BIN / "colcon"), "build"], cwd=ws, env=underlay_env(),
                           capture_output=True, text=True, timeout=900)
    log = built.stdout + built.stderr
    assert built.returncode == 0, log[-4000:]
    assert "Finished <<< seg_ros" in log, log[-2000:]
    return ws


@pytest.mark.slow
def test_colcon_build_installs_node_and_interface(workspace: Path) -> None:
    probe = (
        "import json, seg_ros, seg_ros.msg, seg_ros.ros.node, seg_ros.ros.lifecycle\n"
        "import seg_ros.ros.label_info as node\n"
        "from ament_index_python.packages import get_package_share_directory as share\n"
        "print(json.dumps({'pkg': seg_ros.__file__, 'msg': seg_ros.msg.__file__,\n"
        "  'node_info': repr(node.SegmentationInfo), 'share': share('seg_ros'),\n"
        "  'type': seg_ros.msg.SegmentationInfo.__module__}))\n")
    run = in_install(workspace, "python", "-c", probe, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    install = str(workspace / "install" / "seg_ros")
    assert got["pkg"].startswith(install) and got["msg"].startswith(install), got
    assert "seg_ros.msg._segmentation_info.SegmentationInfo" in got["node_info"]
    share = Path(got["share"])
    assert share == Path(install) / "share" / "seg_ros"
    for shipped in ("package.xml", "launch/segmentation.launch.py", "config/camvid.yaml",
                    "config/seg_ros.rviz", "models/camvid.onnx", "msg/SegmentationInfo.msg"):
        assert (share / shipped).is_file(), shipped
    for exe in ("lib/seg_ros/segmentation_node", "lib/seg_ros/segmentation_lifecycle_node",
                "bin/seg-ros"):
        assert os.access(Path(install) / exe, os.X_OK), exe


LISTEN = """
import sys, time, rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from seg_ros.msg import SegmentationInfo
rclpy.init()
node = rclpy.create_node("label_info_probe")
got = []
qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_subscription(SegmentationInfo, "/segmentation_node/label_info", got.append, qos)
end = time.monotonic() + 60
while not got and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.5)
if not got:
    sys.exit("no ~/label_info from the installed node in 60 s")
print(got[0].model_name, len(got[0].class_names), got[0].labels_encoding)
"""


@pytest.mark.slow
@pytest.mark.ros
def test_installed_node_publishes_label_info(workspace: Path, tmp_path: Path) -> None:
    """The executable colcon installed (what ros2 run / launch_ros start) runs the node without
    `onnx` (package.xml does not ask rosdep for it), and an install-space subscriber decodes its
    latched ~/label_info."""
    no_onnx = tmp_path / "no_onnx" / "onnx"
    no_onnx.mkdir(parents=True)
    (no_onnx / "__init__.py").write_text("raise ImportError('onnx is not installed here')\n")
    node = subprocess.Popen(
        sourced(workspace, "sh", "-c", f'PYTHONPATH="{no_onnx.parent}:$PYTHONPATH" exec '
                "install/seg_ros/lib/seg_ros/segmentation_node"), cwd=workspace,
        env=local_env(DOMAIN, underlay_env()),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        heard = in_install(workspace, "python", "-c", LISTEN, timeout=120)
    finally:
        node.terminate()
        log = node.communicate(timeout=30)[0]
    assert heard.returncode == 0, heard.stderr[-2000:] + log[-3000:]
    assert heard.stdout.split() == ["camvid", "11", "mono8"], heard.stdout


def test_venv_has_the_share_layout_and_ament_index_entry() -> None:
    """`make setup` installs share/seg_ros and the ament index entry into the venv, so the
    lookups `ros2 launch seg_ros ...` and launch_ros make resolve there with
    AMENT_PREFIX_PATH=.venv (launch itself is not on PyPI; `seg-ros node` runs the node)."""
    probe = ("import json\n"
             "from ament_index_python.packages import get_package_prefix, "
             "get_package_share_directory\n"
             "print(json.dumps([get_package_prefix('seg_ros'), "
             "get_package_share_directory('seg_ros')]))\n")
    run = subprocess.run([sys.executable, "-c", probe], env=underlay_env(), capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    prefix, share = map(Path, json.loads(run.stdout.strip().splitlines()[-1]))
    assert prefix == Path(sys.prefix) and share == prefix / "share" / "seg_ros"
    for shipped in ("package.xml", "launch/segmentation.launch.py", "config/camvid.yaml"):
        assert (share / shipped).read_bytes() == (REPO / shipped).read_bytes(), (
            f"{shipped} in the venv is older than the source: run make setup")
    assert os.access(prefix / "lib" / "seg_ros" / "segmentation_node", os.X_OK)


# --------------------------------------------------------------------------------- rosdep


def package_xml_keys() -> set[str]:
    """Every dependency key of package.xml (build, exec, test, buildtool)."""
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(REPO / "package.xml"))
    deps = (pkg.build_depends + pkg.buildtool_depends + pkg.build_export_depends
            + pkg.exec_depends + pkg.test_depends)
    return {d.name for d in deps}


def test_package_xml_uses_exactly_the_listed_keys() -> None:
    listed = set(KEYS["ros_packages"]) | set(KEYS["system"])
    used = package_xml_keys()
    assert not used - listed, f"add to rosdep/keys.yaml (with its source): {sorted(used - listed)}"
    assert not listed - used, f"no longer in package.xml: {sorted(listed - used)}"
    assert "cv_bridge" not in used and "seg_ros_msgs" not in used


@pytest.mark.parametrize("distro", sorted(KEYS["distros"]))
def test_listed_keys_come_from_the_trimmed_rosdistro(distro: str) -> None:
    rules = yaml.safe_load((ROSDISTRO / "rosdep" / "python.yaml").read_text())
    dist = yaml.safe_load((ROSDISTRO / distro / "distribution.yaml").read_text())
    assert set(KEYS["system"]) <= set(rules)
    for pkg, repo in KEYS["ros_packages"].items():
        release = dist["repositories"][repo]["release"]
        assert pkg in release.get("packages", [repo]), (distro, pkg, repo)
    assert KEYS["distros"][distro] in dist["release_platforms"]["ubuntu"]


@pytest.fixture(scope="module")
def rosdep_env(tmp_path_factory) -> dict[str, str]:
    """rosdep configured with only the trimmed rosdistro files (no network), cache updated."""
    rosdep = BIN / "rosdep"
    if not rosdep.exists():
        pytest.skip("rosdep not in the venv: pip install -r requirements.txt")
    home = tmp_path_factory.mktemp("rosdep")
    (home / "sources.list.d").mkdir()
    (home / "sources.list.d" / "20-default.list").write_text(
        f"yaml file://{ROSDISTRO}/rosdep/python.yaml\n")
    env = dict(os.environ, ROSDEP_SOURCE_PATH=str(home / "sources.list.d"),
               ROS_HOME=str(home / "ros"), ROSDISTRO_INDEX_URL=f"file://{ROSDISTRO}/index-v4.yaml",
               ROS_PYTHON_VERSION="3")
    env.pop("ROS_DISTRO", None)  # each test names its distribution
    for installed in ("AMENT_PREFIX_PATH", "ROS_PACKAGE_PATH", "CMAKE_PREFIX_PATH"):
        env.pop(installed, None)  # a robot before its install: no package counts as present
    update = subprocess.run([str(rosdep), "update"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert update.returncode == 0, update.stdout + update.stderr
    return env


@pytest.mark.parametrize("distro", sorted(KEYS["distros"]))
def test_rosdep_resolves_every_key(rosdep_env: dict[str, str], tmp_path: Path,
                                   distro: str) -> None:
    """`rosdep install --from-paths src --ignore-src` on a workspace holding the repository, as
    simulated for the distribution's Ubuntu (humble: jammy, jazzy and kilted: noble, lyrical:
    resolute): every key resolves to the apt / pip package keys.yaml names."""
    ubuntu = KEYS["distros"][distro]
    (tmp_path / "src" / "seg_ros").mkdir(parents=True)
    shutil.copy2(REPO / "package.xml", tmp_path / "src" / "seg_ros" / "package.xml")
    run = subprocess.run(
        [str(BIN / "rosdep"), "install", "--from-paths", "src", "--ignore-src", "--simulate",
         "--reinstall", "-y", f"--os=ubuntu:{ubuntu}", f"--rosdistro={distro}"],
        cwd=tmp_path, env=rosdep_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    installers = {"apt-get": "apt", "pip3": "pip"}
    resolved = {f"{installers[line.split()[0]]} {line.split()[-1]}"
                for line in map(str.strip, run.stdout.splitlines())
                if line.split()[:1] in (["apt-get"], ["pip3"])}
    expected = {f"apt ros-{distro}-" + pkg.replace("_", "-") for pkg in KEYS["ros_packages"]}
    expected |= {rule["noble"] for rule in KEYS["system"].values()}
    assert resolved == expected, run.stdout
