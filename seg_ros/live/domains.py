"""The one ROS domain picker: every live node a test, benchmark or bag eval starts gets a
private domain, so parallel runs and the caller's own ROS graph do not meet."""

from __future__ import annotations

import os
import random
import time

# Domain ids whose Fast DDS ports (7400 + 250 * id and up) stay clear of Linux's ephemeral
# port range (32768-60999): 1..101 and 215..232 (0 is the ROS default, left to the user).
SAFE_DOMAINS = (*range(1, 102), *range(215, 233))


def pick_domain() -> int:
    """A random safe domain id other than this process's ``ROS_DOMAIN_ID``."""
    own = os.environ.get("ROS_DOMAIN_ID", "0")
    rng = random.Random(os.getpid() ^ time.time_ns())
    return rng.choice([d for d in SAFE_DOMAINS if str(d) != own])
