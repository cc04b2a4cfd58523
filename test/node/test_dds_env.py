"""seg_ros.ros.dds and the Fast DDS profile: what every Fast DDS (2.6 Humble, 2.14 Jazzy, 3.x
Kilted) needs to load the profile, and the loopback variable each distribution understands."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata

import pytest

from seg_ros.ros import dds

NS = {"d": "http://www.eprosima.com"}
PROFILE_BOTH = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_3 = ("FASTDDS_DEFAULT_PROFILES_FILE",)


@pytest.mark.parametrize(("rclpy", "distro", "names"), [
    (3, "", PROFILE_BOTH), (7, "", PROFILE_BOTH), (9, "", PROFILE_3), (10, "", PROFILE_3),
    (None, "humble", PROFILE_BOTH), (None, "jazzy", PROFILE_BOTH), (None, "kilted", PROFILE_3),
    (None, "", PROFILE_BOTH)])
def test_local_env_names_the_profile_as_each_fast_dds_reads_it(
        monkeypatch, rclpy: int | None, distro: str, names: tuple[str, ...]) -> None:
    """Fast DDS 2.x (Humble, Jazzy) reads FASTRTPS_; 3.x (Kilted on) reads FASTDDS_ and warns
    at every start when FASTRTPS_ is set; unknown: both."""
    monkeypatch.setattr(dds, "rclpy_major", lambda: rclpy)
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    env = dds.local_env(42, base={"PATH": "/usr/bin", "ROS_DISTRO": distro})
    assert tuple(k for k in dds.PROFILE_VARS if k in env) == names
    assert {env[k] for k in names} == {str(dds.LOCALHOST_PROFILE)}
    assert env["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"
    assert (env["ROS_DOMAIN_ID"], env["PATH"]) == ("42", "/usr/bin")


def test_the_installed_rclpy_picks_the_loopback_variable() -> None:
    try:
        major = int(metadata.version("ros-rclpy").split(".")[0])
    except metadata.PackageNotFoundError:
        pytest.skip("rclpy is not a pip wheel here")
    assert dds.rclpy_major() == major
    want = {"ROS_LOCALHOST_ONLY": "1"} if major < 4 else {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    assert dds.discovery_localhost({"ROS_DISTRO": "humble"}) == want  # the wheel wins


@pytest.mark.parametrize(("distro", "var"), [("humble", "ROS_LOCALHOST_ONLY"),
                                             ("jazzy", "ROS_AUTOMATIC_DISCOVERY_RANGE"),
                                             ("kilted", "ROS_AUTOMATIC_DISCOVERY_RANGE")])
def test_a_sourced_install_picks_by_ros_distro(monkeypatch, distro: str, var: str) -> None:
    """Where rclpy is no pip wheel (a sourced /opt/ros install), ROS_DISTRO decides."""
    monkeypatch.setattr(dds, "rclpy_major", lambda: None)
    assert list(dds.discovery_localhost({"ROS_DISTRO": distro})) == [var]
    assert var in dds.local_env(base={"ROS_DISTRO": distro})


def test_the_profile_names_its_own_transports() -> None:
    """Fast DDS 2.6 has no LARGE_DATA: the profile itself must replace the builtin transports
    with a shared-memory segment that holds a 1280x720 rgb8 frame and loopback UDP."""
    root = ET.parse(dds.LOCALHOST_PROFILE).getroot()
    descriptors = {d.findtext("d:transport_id", namespaces=NS): d
                   for d in root.iterfind(".//d:transport_descriptor", NS)}
    part = root.find(".//d:participant[@is_default_profile='true']", NS)
    assert part is not None
    assert part.findtext("d:rtps/d:useBuiltinTransports", namespaces=NS) == "false"
    used = [t.text for t in part.iterfind("d:rtps/d:userTransports/d:transport_id", NS)]
    assert used and set(used) <= set(descriptors)
    kinds = {descriptors[u].findtext("d:type", namespaces=NS): descriptors[u] for u in used}
    assert int(kinds["SHM"].findtext("d:segment_size", namespaces=NS) or 0) > 1280 * 720 * 3
    assert [a.text for a in kinds["UDPv4"].iterfind(".//d:address", NS)] == ["127.0.0.1"]


@pytest.mark.parametrize("loopback", ["ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST",
                                      "ROS_LOCALHOST_ONLY=1"])
def test_bag_processes_set_the_profile_names_of_their_fast_dds(loopback: str) -> None:
    """seg_ros.bag.rosio (play, record, eval) sets the profile under the name(s) the installed
    Fast DDS reads; one given already names it for the other."""
    code = ("import os, seg_ros.bag.rosio; from seg_ros.ros.dds import profile_vars; "
            "print(*(os.environ[v] for v in profile_vars()))")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("FASTDDS_", "FASTRTPS_", "ROS_AUTOMATIC", "ROS_LOCALHOST"))}
    key, value = loopback.split("=")
    out = subprocess.run([sys.executable, "-c", code], env={**base, key: value},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(dds.LOCALHOST_PROFILE)] * len(dds.profile_vars())
    mine = {**base, key: value, "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    out = subprocess.run([sys.executable, "-c", code], env=mine, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["/etc/my_profile.xml"] * len(dds.profile_vars())
