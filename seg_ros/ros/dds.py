"""DDS environment for processes that exchange camera-sized messages on one machine.

Importing this module does not import rclpy: the variables must be set before rclpy starts a
participant (in this process, or in a child's environment).

Works with the Fast DDS of each supported distribution: 2.6 (Humble) reads the profile from
``FASTRTPS_DEFAULT_PROFILES_FILE`` and knows no ``FASTDDS_BUILTIN_TRANSPORTS`` (the profile
itself names its transports), 2.14 (Jazzy) reads the ``FASTRTPS_`` name too, 3.x (Kilted and
later) only ``FASTDDS_DEFAULT_PROFILES_FILE`` and warns at every start that the ``FASTRTPS_``
name is deprecated: the ``FASTRTPS_`` name is set unless the ROS in use has Fast DDS 3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

LOCALHOST_PROFILE = Path(__file__).with_name("fastdds_localhost.xml")
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FAST_DDS_2_DISTROS = frozenset({"foxy", "galactic", "humble", "iron", "jazzy"})
FAST_DDS_3_RCLPY = 9  # Kilted's rclpy 9 is the first wheel set on Fast DDS 3
# distributions whose rcl predates ROS_AUTOMATIC_DISCOVERY_RANGE (Iron): ROS_LOCALHOST_ONLY there
LOCALHOST_ONLY_DISTROS = frozenset({"foxy", "galactic", "humble"})


def rclpy_major() -> int | None:
    """Major version of the installed rclpy wheel (Humble 3, Iron 4, Jazzy 7, Kilted 9), or None
    where rclpy is not a pip distribution (a sourced ROS install: ROS_DISTRO says it there)."""
    for dist in ("ros-rclpy", "rclpy"):
        try:
            return int(metadata.version(dist).split(".")[0])
        except (metadata.PackageNotFoundError, ValueError):
            continue
    return None


def discovery_localhost(env: Mapping[str, str]) -> dict[str, str]:
    """The variable that keeps discovery on loopback for the ROS in use (the rclpy wheel's
    version, else ``ROS_DISTRO`` of a sourced install, from ``env`` or this process):
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST from Iron on, ROS_LOCALHOST_ONLY=1 before (Humble),
    where the newer one is silently ignored."""
    major = rclpy_major()  # the rclpy wheel of this venv, over a ROS_DISTRO left in the shell
    distro = (env.get("ROS_DISTRO") or os.environ.get("ROS_DISTRO", "")).lower()
    if (major < 4) if major is not None else distro in LOCALHOST_ONLY_DISTROS:
        return {"ROS_LOCALHOST_ONLY": "1"}
    return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def fast_dds_major(env: Mapping[str, str] | None = None) -> int | None:
    """2 or 3: the Fast DDS generation of the ROS in use (by the rclpy wheel, else the sourced
    install's ``ROS_DISTRO`` from ``env`` or this process); None when neither says."""
    major = rclpy_major()
    if major is not None:
        return 3 if major >= FAST_DDS_3_RCLPY else 2
    distro = ((env or {}).get("ROS_DISTRO") or os.environ.get("ROS_DISTRO", "")).lower()
    if not distro:
        return None
    return 2 if distro in FAST_DDS_2_DISTROS else 3


def profile_vars(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The default-profile variable names to set: Fast DDS 3 reads FASTDDS_ (and warns about
    FASTRTPS_ on every start), 2.x reads FASTRTPS_; both where the generation is unknown."""
    return PROFILE_VARS[:1] if fast_dds_major(env) == 3 else PROFILE_VARS


def profile_env(profile: Path | str = LOCALHOST_PROFILE,
                env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Fast DDS's default-profile variable, under the name(s) the ROS in use reads."""
    return {name: str(profile) for name in profile_vars(env)}


def local_env(domain_id: int | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) plus what keeps images whole and traffic on loopback:
    Fast DDS LARGE_DATA transports (2.13 and later), loopback-only discovery, and the
    shared-memory profile whose segment fits a whole image, under the variable name(s) of the
    Fast DDS in use (see fastdds_localhost.xml for the measurements)."""
    env = dict(os.environ if base is None else base)
    env.update(FASTDDS_BUILTIN_TRANSPORTS="LARGE_DATA", **profile_env(env=env))
    env.update(discovery_localhost(env))
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def use_local_env(domain_id: int | None = None) -> None:
    """Apply :func:`local_env` to this process (before ``rclpy.init``)."""
    os.environ.update(local_env(domain_id, base={}))
