"""The rclpy API seg_ros uses exists on Humble (rclpy 3.3, Jetson's JetPack 6), or has a fallback.

No Humble wheels exist, so Humble's rclpy is read as source (../shared/ros-src/rclpy-humble.tar.gz)
and parsed with ast, as is the rclpy installed here (Kilted or Jazzy). The project's uses are
found by scanning seg_ros/: every ``from rclpy... import`` and ``rclpy.<name>`` reference, and
every attribute name used in seg_ros/ that is a public member of an rclpy class here, must be
defined on Humble by the same module or class (with its rclpy base classes). The members with
a fallback in seg_ros.ros.compat may be named only there.
"""

from __future__ import annotations

import ast
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from seg_ros.live import pick_domain

REPO = Path(__file__).resolve().parents[2]
HUMBLE_TAR = REPO.parent / "shared" / "ros-src" / "rclpy-humble.tar.gz"
PKG = REPO / "seg_ros"
COMPAT = PKG / "ros" / "compat.py"
# Iron-and-later members that seg_ros.ros.compat reaches through getattr/hasattr, with a fallback
FALLBACKS = {"add_post_set_parameters_callback", "get_publisher_count"}
# Iron-and-later modules seg_ros.ros.compat imports with a fallback to Humble's: (new, Humble's)
MODULE_FALLBACKS = {("rclpy", "event_handler"): ("rclpy", "qos_event")}
# rclpy members whose names seg_ros also gives to its own objects (the scan cannot tell them
# apart): never called on an rclpy object by seg_ros
OWN_NAMES = {"matched"}  # depth_hook's counters.matched, not (Publisher|Subscription)EventCallbacks

Members = dict[str, set[str]]  # class name -> public members, its rclpy bases included


def _sources_from_tar() -> dict[str, str]:
    """rclpy module name ('rclpy.node') -> source, from the Humble archive."""
    out = {}
    with tarfile.open(HUMBLE_TAR) as tar:
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if m.isfile() and m.name.endswith(".py") and "rclpy" in parts:
                i = len(parts) - 1 - parts[::-1].index("rclpy")  # the innermost rclpy folder
                f = tar.extractfile(m)
                if f is not None and i < len(parts) - 1:
                    out[_module(parts[i:])] = f.read().decode()
    return out


def _sources_installed() -> dict[str, str]:
    import importlib.util

    spec = importlib.util.find_spec("rclpy")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    return {_module(p.relative_to(root.parent).parts): p.read_text()
            for p in root.rglob("*.py")}


def _module(parts: tuple[str, ...]) -> str:
    name = ".".join(parts)[: -len(".py")]
    return name.removesuffix(".__init__")


def _class_members(cls: ast.ClassDef) -> tuple[set[str], list[str]]:
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node in cls.body:
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node in cls.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    bases = [b.id if isinstance(b, ast.Name) else b.attr for b in cls.bases
             if isinstance(b, (ast.Name, ast.Attribute))]
    return {n for n in names if not n.startswith("_")}, bases


def _api(sources: dict[str, str]) -> tuple[Members, dict[str, set[str]]]:
    """(class -> public members with inherited ones, module -> module-level names)."""
    own: dict[str, tuple[set[str], list[str]]] = {}
    modules: dict[str, set[str]] = {}
    for mod, src in sources.items():
        tree = ast.parse(src)
        names = set()
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                own[node.name] = _class_members(node)
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
        modules[mod] = names | {m.rpartition(".")[2] for m in sources
                                if m.rpartition(".")[0] == mod}  # its submodules

    def members(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name not in own or name in seen:
            return set()
        mine, bases = own[name]
        return mine.union(*(members(b, seen | {name}) for b in bases))

    return {c: members(c) for c in own}, modules


def _project_files() -> Iterator[Path]:
    for p in sorted(PKG.rglob("*.py")):
        if "msg" not in p.relative_to(PKG).parts[:1]:
            yield p


def _uses() -> tuple[set[tuple[str, str]], dict[str, set[Path]]]:
    """({(rclpy module, name) imported or referenced}, {attribute name -> files using it})."""
    imported: set[tuple[str, str]] = set()
    attrs: dict[str, set[Path]] = {}
    for path in _project_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rclpy":
                imported |= {(node.module or "", a.name) for a in node.names}
            elif isinstance(node, ast.Attribute):
                attrs.setdefault(node.attr, set()).add(path)
                chain = _dotted(node)
                if chain and chain[0] == "rclpy" and len(chain) >= 2:
                    imported.add((".".join(chain[:-1]), chain[-1]))
    return imported, attrs


def _dotted(node: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return [node.id, *parts] if isinstance(node, ast.Name) else []


@pytest.fixture(scope="module")
def apis() -> tuple[tuple[Members, dict[str, set[str]]], tuple[Members, dict[str, set[str]]]]:
    if not HUMBLE_TAR.is_file():
        pytest.fail(f"{HUMBLE_TAR} missing: the ROS source snapshots come with ../shared/ros-src")
    pytest.importorskip("rclpy")
    return _api(_sources_from_tar()), _api(_sources_installed())


def test_humble_sources_parsed(apis):
    """The parse finds Humble's known API (and not what Humble lacks), so the checks below can
    fail."""
    (h_cls, h_mod), (k_cls, _) = apis
    assert {"create_subscription", "add_on_set_parameters_callback", "count_publishers",
            "get_publishers_info_by_topic"} <= h_cls["Node"]
    assert "add_post_set_parameters_callback" not in h_cls["Node"]
    assert "add_post_set_parameters_callback" in k_cls["Node"]
    assert "get_publisher_count" not in h_cls["Subscription"]
    assert "create_subscription" in h_cls["LifecycleNode"]  # inherited from Node
    assert {"init", "shutdown", "create_node"} <= h_mod["rclpy"]


def test_modules_and_names_exist_on_humble(apis):
    """Every ``from rclpy.x import y`` and ``rclpy.x.y`` in seg_ros/ exists in Humble's rclpy."""
    (_, h_mod), _ = apis
    imported, _ = _uses()
    assert ("rclpy.node", "Node") in imported  # the scan sees the project's imports
    missing = sorted(f"{m}.{n}" for m, n in imported - set(MODULE_FALLBACKS)
                     if m not in h_mod or (n not in h_mod[m] and f"{m}.{n}" not in h_mod))
    assert not missing, f"rclpy names seg_ros uses that Humble lacks: {missing}"
    for (m, n), (hm, hn) in MODULE_FALLBACKS.items():  # the fallback is there, still needed
        assert f"{hm}.{hn}" in h_mod and f"{m}.{n}" not in h_mod, (m, n)
        assert {"SubscriptionEventCallbacks", "UnsupportedEventTypeError"} <= h_mod[f"{hm}.{hn}"]
        users = {p for p in _project_files() for node in ast.walk(ast.parse(p.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module == m
                 and any(a.name == n for a in node.names)} - {COMPAT}
        assert not users, f"import {m}.{n} through seg_ros.ros.compat: {sorted(users)}"


def test_class_members_exist_on_humble(apis):
    """Every member of an rclpy class here that seg_ros/ names is on Humble's same class, or is
    one of the fallbacks, named only in seg_ros.ros.compat."""
    (h_cls, _), (k_cls, _) = apis
    _, attrs = _uses()
    used = {(c, a) for c, names in k_cls.items() if c in h_cls for a in names & set(attrs)}
    assert ("Node", "create_subscription") in used and ("QoSProfile", "depth") in used
    missing = sorted(f"{c}.{a}" for c, a in used
                     if a not in h_cls[c] and a not in FALLBACKS | OWN_NAMES)
    assert not missing, (f"rclpy members seg_ros uses that Humble's rclpy lacks (add a "
                         f"fallback in seg_ros/ros/compat.py): {missing}")
    outside = {a: sorted(str(p.relative_to(REPO)) for p in attrs.get(a, set()) - {COMPAT})
               for a in FALLBACKS}
    assert not any(outside.values()), f"use seg_ros.ros.compat for these: {outside}"
    for a in FALLBACKS:  # each fallback is still needed: Humble lacks it
        assert not any(a in m for m in h_cls.values()), f"{a} is on Humble: drop its fallback"


class _HumbleLike:
    """A real rclpy node or subscription seen through Humble's API: the Iron-and-later members
    that seg_ros.ros.compat falls back from are absent (Humble itself cannot run here)."""

    def __init__(self, real: object) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        if name in FALLBACKS:
            raise AttributeError(name)
        return getattr(self._real, name)


def test_parameter_fallback_checks_then_applies() -> None:
    """Without post-set callbacks a refused change is never applied, an accepted one is, once."""
    rclpy = pytest.importorskip("rclpy")
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.parameter import Parameter

    from seg_ros.ros.compat import add_parameter_callbacks

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=pick_domain())
    try:
        node = rclpy.create_node("compat_probe", context=ctx, start_parameter_services=False)
        node.declare_parameter("gain", 1.0)
        applied: list[float] = []
        add_parameter_callbacks(
            _HumbleLike(node),
            lambda ps: SetParametersResult(successful=all(p.value > 0 for p in ps),
                                           reason="gain must be > 0"),
            lambda ps: applied.extend(p.value for p in ps))
        refused = node.set_parameters([Parameter("gain", value=-2.0)])[0]
        accepted = node.set_parameters([Parameter("gain", value=3.0)])[0]
        assert (refused.successful, refused.reason) == (False, "gain must be > 0")
        assert accepted.successful and applied == [3.0]
        assert node.get_parameter("gain").value == 3.0
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_publisher_count_fallback_counts_the_topics_publishers():
    rclpy = pytest.importorskip("rclpy")
    from std_msgs.msg import Empty

    from seg_ros.ros.compat import publisher_count

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=pick_domain())
    try:
        node = rclpy.create_node("compat_count", context=ctx, start_parameter_services=False)
        sub = node.create_subscription(Empty, "compat_probe_topic", lambda _m: None, 1)
        assert publisher_count(node, _HumbleLike(sub)) == publisher_count(node, sub) == 0
        node.create_publisher(Empty, "compat_probe_topic", 1)
        assert publisher_count(node, _HumbleLike(sub)) == 1  # the node's own, in its graph
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
