"""rosbag2 tools on the `rosbags` library: make (folder -> bag), play (bag -> live topics),
record (live topics -> bag) and evaluate (bag -> real node process -> mIoU, latency, drops).

This module and :mod:`seg_ros.bag.make` are ROS-free (rosbags only); ``play``, ``record`` and
``evaluate`` import rclpy. Bags use the ROS 2 Kilted message definitions plus seg_ros's own
interface (msg/*.msg, e.g. seg_ros/msg/SegmentationInfo on ~/label_info); rosbags' CDR bytes are
exactly what rmw puts on the wire, so raw bytes go from a bag to a publisher unchanged.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.errors import SegRosError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)
STORAGES = ("mcap", "sqlite3")
LABELS_SUFFIX = "labels_gt"
DEPTH_MARK = "depth"  # topics naming it are depth images / their camera_info (not the colour's)
INTERFACE_PACKAGE = "seg_ros"  # the package whose msg/*.msg the typestore learns


class BagError(SegRosError, ValueError):
    """A bag is missing, unreadable or lacks what a command needs; the message names the fix."""


_TYPESTORE: Any = None


def typestore() -> Any:
    """The rosbags typestore with the ROS 2 Kilted definitions and seg_ros's interface (cached)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        store = get_typestore(Stores.ROS2_KILTED)
        folder = interface_dir()
        if folder is not None:
            for path in sorted(folder.glob("*.msg")):
                name = f"{INTERFACE_PACKAGE}/msg/{path.stem}"
                store.register(get_types_from_msg(path.read_text(), name))
        _TYPESTORE = store
    return _TYPESTORE


def register_installed(msgtype: str) -> bool:
    """Teach the typestore ``msgtype`` ("pkg/msg/Name") and every type it uses from the .msg
    files of the local ROS install (<share>/pkg/msg, found with the ament index), so a bag can
    hold any type the install knows (e.g. vision_msgs/msg/LabelInfo). False when some
    definition is not installed."""
    from rosbags.typesys import get_types_from_msg

    store, todo, found = typestore(), [msgtype], {}
    while todo:
        name = todo.pop()
        if name in store.types or name in found:
            continue
        text = installed_definition(name)
        if text is None:
            return False
        types = get_types_from_msg(text, name)
        found.update(types)
        todo.extend(_used_types(types[name]))
    store.register(found)
    return True


def installed_definition(msgtype: str) -> str | None:
    """The .msg text of ``msgtype`` in the local ROS install, or None."""
    pkg, kind, name = [*msgtype.split("/"), "", ""][:3]
    if kind != "msg" or not pkg or not name:
        return None
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory(pkg)) / "msg" / f"{name}.msg"
    except Exception:  # ament_index_python missing, or the package not installed
        return None
    return path.read_text() if path.is_file() else None


def _used_types(definition: Any) -> Iterator[str]:
    """The "pkg/msg/Name" strings inside a rosbags type definition (its fields' types)."""
    if isinstance(definition, str):
        if definition.count("/") == 2:
            yield definition
    elif isinstance(definition, (list, tuple)):
        for part in definition:
            yield from _used_types(part)


def interface_dir() -> Path | None:
    """seg_ros's .msg folder: the repository's msg/ in a source checkout, else the installed
    <share>/seg_ros/msg (colcon install or the venv's share/); None when neither exists."""
    repo_msgs = Path(__file__).resolve().parents[2] / "msg"
    if repo_msgs.is_dir() and any(repo_msgs.glob("*.msg")):
        return repo_msgs
    try:
        from ament_index_python.packages import get_package_share_directory

        share_msgs = Path(get_package_share_directory(INTERFACE_PACKAGE)) / "msg"
    except Exception:  # ament_index_python missing, or seg_ros not in the ament index
        return None
    return share_msgs if share_msgs.is_dir() else None


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """Header stamp (ns) of a serialized message whose first field is a std_msgs/Header, read
    from the CDR bytes without deserializing the (possibly MB-sized) rest."""
    if len(raw) < 12:
        raise BagError(f"a {len(raw)}-byte message is too short to hold a header stamp")
    little_endian = raw[1] == 1  # CDR encapsulation id: 0x0001 little, 0x0000 big endian
    sec, nanosec = struct.unpack_from("<iI" if little_endian else ">iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


@dataclass(frozen=True)
class Topics:
    """Topic names a made bag uses under ``prefix`` (default ``/camera``)."""

    prefix: str = "/camera"
    compressed: bool = False

    @property
    def image(self) -> str:
        return f"{self.prefix}/image_raw" + ("/compressed" if self.compressed else "")

    @property
    def camera_info(self) -> str:
        return f"{self.prefix}/camera_info"

    @property
    def labels(self) -> str:
        return f"{self.prefix}/{LABELS_SUFFIX}" + ("/compressed" if self.compressed else "")

    @property
    def depth(self) -> str:
        """Registered depth, sensor_msgs/Image 16UC1 millimetres (always raw)."""
        return f"{self.prefix}/{DEPTH_MARK}/image_raw"

    @property
    def depth_info(self) -> str:
        return f"{self.prefix}/{DEPTH_MARK}/camera_info"


def open_reader(path: str | Path) -> Any:
    """Open a rosbag2 folder (or a lone .mcap/.db3 file) with rosbags; BagError when unreadable."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist: check the path (a rosbag2 folder)")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        partial = path.parent / f".{path.name}.partial"
        hint = " (a failed write leaves only a hidden .partial folder)" if partial.exists() else ""
        raise BagError(
            f"{path} has no metadata.yaml, so it is not a complete rosbag2 folder{hint}: "
            "re-make or re-record it"
        )
    try:
        reader = Reader(path)
        reader.open()
    except Exception as e:  # rosbags raises ReaderError, sqlite3/mcap errors, OSError...
        raise BagError(
            f"cannot read bag {path} ({type(e).__name__}: {e}): the file is truncated or "
            "corrupt; re-make or re-record it"
        ) from None
    return reader


def iter_raw(reader: Any, connections: list[Any], source: str) -> Iterator[tuple[Any, int, bytes]]:
    """(connection, timestamp ns, raw CDR) in bag order; BagError when the data is truncated."""
    try:
        yield from reader.messages(connections=connections)
    except BagError:
        raise
    except Exception as e:
        raise BagError(
            f"bag {source} is truncated or corrupt ({type(e).__name__}: {e}): re-make or "
            "re-record it"
        ) from None


def deserialize(raw: bytes | memoryview, msgtype: str, source: str = "message") -> Any:
    try:
        return typestore().deserialize_cdr(bytes(raw) if isinstance(raw, memoryview) else raw,
                                           msgtype)
    except Exception as e:
        raise BagError(
            f"{source}: cannot deserialize a {msgtype} ({type(e).__name__}: {e}): the data is "
            "corrupt or of another type"
        ) from None


def image_from_msg(msg: Any, msgtype: str, keep_ids: bool = False) -> np.ndarray:
    """Decode a rosbags Image/CompressedImage to RGB uint8; ``keep_ids`` keeps mono label ids
    (mono8/mono16 raw, PNG compressed) as a 2-D array instead of converting to RGB."""
    from seg_ros import codec

    try:
        if msgtype == COMPRESSED:
            if keep_ids:
                return codec.decode_compressed_labels(msg.format, msg.data)
            return codec.decode_compressed(msg.format, msg.data)
        if keep_ids:
            return codec.decode_labels(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                                       bool(msg.is_bigendian))
    except codec.CodecError as e:
        raise BagError(str(e)) from None
    return codec.decode_raw(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                            bool(msg.is_bigendian))


def find_topic(reader: Any, types: tuple[str, ...], source: str, want: str | None = None,
               exclude: str | tuple[str, ...] | None = None, what: str = "image") -> Any:
    """The one connection of ``types`` (named ``want`` when given; else none whose topic holds
    an ``exclude`` substring) in ``reader``; BagError else."""
    conns = [c for c in reader.connections if c.msgtype in types]
    if want is not None:
        named = [c for c in reader.connections if c.topic == want]
        if not named:
            raise BagError(
                f"bag {source} has no topic {want}; its topics: "
                f"{_listing(reader)}: pass one of them"
            )
        if named[0].msgtype not in types:
            raise BagError(f"{want} in {source} is a {named[0].msgtype}, not {' or '.join(types)}")
        return named[0]
    if exclude:
        skip = (exclude,) if isinstance(exclude, str) else exclude
        conns = [c for c in conns if not any(e in c.topic for e in skip)]
    if not conns:
        raise BagError(
            f"bag {source} has no {what} topic ({' or '.join(types)}); its topics: "
            f"{_listing(reader)}: record the camera topic, or make one with `seg-ros bag make`"
        )
    if len(conns) > 1:
        names = sorted({c.topic for c in conns})
        if len(names) > 1:
            raise BagError(
                f"bag {source} has several {what} topics {names}: choose one with --image-topic"
            )
    return conns[0]


def _listing(reader: Any) -> str:
    return ", ".join(f"{c.topic} [{c.msgtype}]" for c in reader.connections) or "none"


def staging(out: Path) -> Path:
    """Where to write ``out`` first: ``.<name>.partial/<name>`` next to it. The storage file
    keeps its final name; :func:`commit` renames the finished folder onto ``out``, so a failure
    never leaves anything at ``out`` that looks complete."""
    out = Path(out)
    if out.exists():
        raise BagError(f"{out} exists already: choose another --out or delete it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp / out.name


def commit(staged: Path, out: Path) -> None:
    staged.rename(out)
    shutil.rmtree(staged.parent, ignore_errors=True)


def discard(staged: Path) -> None:
    shutil.rmtree(staged.parent, ignore_errors=True)
