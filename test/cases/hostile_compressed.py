"""The hostile cases of a node on compressed input (a :class:`~cases.hostile.HostileRig`
with ``compressed=True``): a PNG bomb, a corrupt JPEG, an EXIF-rotated JPEG, each with what the
node must say."""

from __future__ import annotations

from typing import Any

from cases.hostile import WARN, H, HostileRig, W, settle
from cases.hostile_images import corrupt_jpeg, jpeg, png_bomb
from seg_ros.live import rss_mb


def case_png_bomb(rig: HostileRig) -> dict[str, Any]:
    """A 20000x20000 PNG of ~400 KB: rejected from its header (no 400 MB decode), counted."""
    from sensor_msgs.msg import CompressedImage

    from seg_ros.ros.convert import byte_array

    bomb = byte_array(png_bomb())
    before = rig.counter("frames_rejected")
    rss0 = rss_mb(rig.node.pid)
    rig.image_maker = lambda h: CompressedImage(header=h, format="png", data=bomb)
    rig.diag(lambda lvl, _m, v: lvl >= WARN and int(v["frames_rejected"]) > before + 3
             and "max_input_pixels" in v["last_error"], 15, "the PNG bomb rejected")
    growth = rss_mb(rig.node.pid) - rss0
    assert growth < 100, f"RSS grew {growth:.0f} MB: the PNG was decoded"
    rig.image_maker = None
    rig.flowing("labels")
    settle(rig)
    return {"png_bomb_bytes": len(bomb), "png_bomb_rss_growth_mb": growth}


def case_corrupt_jpeg(rig: HostileRig) -> dict[str, Any]:
    """Half a JPEG with a fake end marker is rejected as corrupt, not segmented."""
    from sensor_msgs.msg import CompressedImage

    from seg_ros.ros.convert import byte_array

    bad = byte_array(corrupt_jpeg(rig.rgb))
    before = rig.counter("frames_rejected")
    processed = rig.counter("frames_processed")
    rig.image_maker = lambda h: CompressedImage(header=h, format="jpeg", data=bad)
    _l, _m, values = rig.diag(lambda lvl, _m, v: lvl >= WARN and int(v["frames_rejected"])
                              > before + 3 and "corrupt" in v["last_error"].lower(), 15,
                              "the corrupt JPEG rejected")
    rig.image_maker = None
    assert int(values["frames_processed"]) - processed <= 2  # at most frames already in flight
    settle(rig)
    return {"corrupt_jpeg_rejected": int(values["frames_rejected"]) - before}


def case_exif_orientation(rig: HostileRig) -> dict[str, Any]:
    """A JPEG tagged 'rotate 90' is segmented as the sensor sent it: labels stay 64x48."""
    from sensor_msgs.msg import CompressedImage

    from seg_ros.ros.convert import byte_array

    tagged = byte_array(jpeg(rig.rgb, exif_orientation=6))
    rig.labels_sizes.clear()
    rig.image_maker = lambda h: CompressedImage(header=h, format="jpeg", data=tagged)
    rig.flowing("labels", n=3)
    rig.image_maker = None
    assert set(rig.labels_sizes) == {(W, H)}, rig.labels_sizes
    return {"exif_labels_size": f"{W}x{H}"}


COMPRESSED_CASES = (case_png_bomb, case_corrupt_jpeg, case_exif_orientation)
