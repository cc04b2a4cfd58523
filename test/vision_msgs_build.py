"""Build the test-only vision_msgs package (VisionClass, LabelInfo) into a prefix.

No vision_msgs wheel exists, so tests of the node's vision_msgs/msg/LabelInfo output generate
the package with rosidl from this interpreter's ROS wheels, the way scripts/build_msgs.sh
generates seg_ros's interface, and run the code that needs it in a child process whose
environment (returned here) finds the Python modules, the type-support libraries and the
ament index entry in the prefix.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "vision_msgs_pkg"
FIXUPS = HERE.parent / "scripts" / "pip_ros_fixups.cmake"
STAMP = ".vision_msgs_build_stamp"
# Lines that say only that something failed, not what.
GENERIC = re.compile(r"Configuring incomplete|returned error code|^CMake Error at|errors occurred")


class VisionMsgsBuildError(RuntimeError):
    """The build failed; the message is one line naming the step and its log."""


def site_packages(prefix: Path) -> Path:
    """Where the generated Python package is installed under ``prefix``."""
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages"


def missing_tools() -> str | None:
    """Why no build is possible here (cmake, a C++ compiler or ninja missing), or None."""
    if shutil.which("cmake") is None:
        return "cmake not found (apt-get install cmake)"
    if shutil.which("c++") is None and shutil.which("g++") is None:
        return "no C++ compiler (apt-get install g++)"
    if not (Path(sys.prefix) / "bin" / "ninja").exists() and shutil.which("ninja") is None:
        return "ninja not found (pip install ninja)"
    return None


def source_digest() -> str:
    """Hash of everything the build depends on, so a finished prefix is reused only as is."""
    digest = hashlib.sha256(sys.executable.encode())
    for path in sorted([*PACKAGE.rglob("*"), FIXUPS]):
        if path.is_file():
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def merged(name: str, *first: str | Path, default: str = "") -> str:
    """``first`` prepended to the current value of ``name`` (``default`` when unset)."""
    current = [p for p in os.environ.get(name, default).split(os.pathsep) if p]
    head = [str(p) for p in first]
    return os.pathsep.join(head + [p for p in current if p not in head])


def child_env(prefix: Path) -> dict[str, str]:
    """Variables a child process needs to import and use vision_msgs from ``prefix``; the
    venv stays on AMENT_PREFIX_PATH so the child still finds the packages it had."""
    return {
        "PYTHONPATH": merged("PYTHONPATH", site_packages(prefix)),
        "LD_LIBRARY_PATH": merged("LD_LIBRARY_PATH", prefix / "lib", Path(sys.prefix) / "lib"),
        "AMENT_PREFIX_PATH": merged("AMENT_PREFIX_PATH", prefix, default=sys.prefix),
    }


def ninja() -> str:
    """The venv's ninja (the one scripts/build_msgs.sh uses), else one on PATH."""
    venv_ninja = Path(sys.prefix) / "bin" / "ninja"
    return str(venv_ninja) if venv_ninja.exists() else str(shutil.which("ninja"))


def build_env() -> dict[str, str]:
    """rosidl and ament are found in the venv, and its generators run with its interpreter."""
    env = dict(os.environ)
    env.update(AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix,
               PATH=os.pathsep.join([str(Path(sys.prefix) / "bin"), env.get("PATH", "")]))
    return env


def configure_args(prefix: Path, build: Path) -> list[str]:
    """CMake configure command: Release, no tests, everything (Python too) into ``prefix``."""
    rpath = ";".join(["$ORIGIN", "$ORIGIN/..", str(prefix / "lib"), str(Path(sys.prefix) / "lib")])
    return [
        "cmake", "-S", str(PACKAGE), "-B", str(build), "-G", "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={ninja()}",
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_INSTALL_PREFIX={prefix}",
        f"-DPYTHON_INSTALL_DIR={site_packages(prefix).relative_to(prefix)}",
        f"-DPython3_EXECUTABLE={sys.executable}", "-DPython3_FIND_VIRTUALENV=ONLY",
        f"-DCMAKE_INSTALL_RPATH={rpath}",
        "-DBUILD_TESTING=OFF", "--log-level=WARNING",
    ]


def run_step(step: str, cmd: list[str], log: Path) -> None:
    """Run one build step, its output appended to ``log``; raise with one line on failure."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=build_env(),
                                check=False)
    if result.returncode != 0:
        raise VisionMsgsBuildError(
            f"vision_msgs {step} failed (exit {result.returncode}): {last_error(log)}; see {log}")


def last_error(log: Path) -> str:
    """The most telling line of a failed step's output: its last error line, else its last."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and not GENERIC.search(line)]
    return (errors or lines or ["no output"])[-1][:300]


def build_vision_msgs(prefix: Path) -> dict[str, str]:
    """Configure, build and install vision_msgs into ``prefix`` (reused when already built
    from the same sources) and return the child-process variables of :func:`child_env`.

    Raises VisionMsgsBuildError (one-line reason, also printed) when tools are missing or a
    step fails.
    """
    prefix = Path(prefix).resolve()
    stamp, digest = prefix / STAMP, source_digest()
    if not (stamp.is_file() and stamp.read_text() == digest):
        try:
            build_into(prefix, digest)
        except VisionMsgsBuildError as error:
            print(error, file=sys.stderr)
            raise
    return child_env(prefix)


def build_into(prefix: Path, digest: str) -> None:
    """The build proper: configure, build with two jobs, install, then stamp the prefix."""
    reason = missing_tools()
    if reason:
        raise VisionMsgsBuildError(f"vision_msgs build impossible: {reason}")
    build = prefix / "build"
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / STAMP).unlink(missing_ok=True)
    log = prefix / "build.log"
    log.write_text("")
    run_step("configure", configure_args(prefix, build), log)
    run_step("build", ["cmake", "--build", str(build), "--", "-j2"], log)
    run_step("install", ["cmake", "--install", str(build)], log)
    (prefix / STAMP).write_text(digest)
