"""DDS environment for processes that exchange camera-sized messages on one machine.

Importing this module does not import rclpy: the variables must be set before rclpy starts a
participant (in this process, or in a child's environment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

LOCALHOST_PROFILE = Path(__file__).with_name("fastdds_localhost.xml")


def local_env(domain_id: int | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) plus what keeps images whole and traffic on loopback:
    Fast DDS LARGE_DATA transports, loopback-only discovery, and the shared-memory profile
    whose segment fits a whole image (see fastdds_localhost.xml for the measurements)."""
    env = dict(os.environ if base is None else base)
    env.update(FASTDDS_BUILTIN_TRANSPORTS="LARGE_DATA",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               FASTDDS_DEFAULT_PROFILES_FILE=str(LOCALHOST_PROFILE))
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def use_local_env(domain_id: int | None = None) -> None:
    """Apply :func:`local_env` to this process (before ``rclpy.init``)."""
    os.environ.update(local_env(domain_id, base={}))
