"""The node's malloc set-up (seg_ros.ros.memory) takes effect where the C library is glibc."""

from __future__ import annotations

import platform

import pytest

from seg_ros.ros.memory import keep_large_buffers


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_large_buffers_applies_on_glibc() -> None:
    assert keep_large_buffers() is True
