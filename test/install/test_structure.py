"""The shape of the code, checked from its source: imports flow one way without cycles, no
block of six lines is written twice, no function grows past 80 lines.

Rooms and arrows follow ARCHITECTURE: the ROS-free core (codec, model card, engines, segmenter,
render, floor, pipeline, metrics) knows nothing of the rooms downstream of it; ``ros`` is the
node's glue; ``modelprep`` (offline model preparation) builds on engines and the card, and
neither the core nor the node imports it; ``bag``, ``train`` and ``live`` are tools around
it, ``gpucheck`` a tool over them; ``cli`` calls them all.
Every import counts, lazy ones inside functions included.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "seg_ros"
GENERATED = PACKAGE / "msg"  # rosidl output
MAX_FUNCTION_LINES = 80
BLOCK_LINES = 6

CORE = {"seg_ros", "errors", "frames", "codec", "model_card", "preprocess", "postprocess",
        "render", "metrics", "pipeline", "segmenter", "engines", "floor", "builds", "timing"}
# room -> the rooms it must never import (its downstream: the flow runs the other way)
DOWNSTREAM = {"ros", "bag", "train", "live", "gpucheck", "cli"}
NEVER = {
    **{room: DOWNSTREAM | {"modelprep"} for room in CORE},
    "modelprep": DOWNSTREAM,  # offline preparation: engines and the card, never the node
    "ros": (DOWNSTREAM - {"ros"}) | {"modelprep"},
    "train": DOWNSTREAM - {"train"},
    "bag": {"train", "gpucheck", "cli"},
    "live": {"bag", "gpucheck", "cli"},
    "gpucheck": {"cli"},  # a tool over all of them: engines, a node (live), torch (train)
    "cli": set(),
}
# engines know neither the segmenter nor the offline preparation built on them
NEVER["engines"] = DOWNSTREAM | {"modelprep", "segmenter"}
# third-party packages only some rooms may import (module name -> rooms or files allowed)
GUARDED = {
    "rclpy": ("seg_ros.ros", "seg_ros.bag", "seg_ros.live"),
    "torch": ("seg_ros.train", "seg_ros.engines.torch", "seg_ros.live.models"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if GENERATED in path.parents:
            continue
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports, anywhere in its file: seg_ros modules by full name (a
    ``from package import submodule`` counts the submodule), others by top-level name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    return {m if m in known or not m.startswith("seg_ros") else _owner(m, known)
            for m in found} - {name}


def _owner(module: str, known: set[str]) -> str:
    while module not in known and "." in module:
        module = module.rpartition(".")[0]
    return module


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "seg_ros"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_found() -> None:
    """The walker itself: it sees lazy imports and relative ones (else the checks below pass
    on an empty graph)."""
    graph = _graph()
    assert "seg_ros.engines.torch" in graph
    assert "seg_ros.engines.tensorrt.cache" in graph["seg_ros.engines.tensorrt.engine"]
    assert "seg_ros.segmenter" in graph["seg_ros.cli.segment"] | graph["seg_ros.cli"]
    assert "torch" in graph["seg_ros.engines.torch"]  # imported inside functions
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (lazy imports count): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_imports_flow_one_way() -> None:
    """No room imports a room downstream of it (ARCHITECTURE: "no room reaches back up")."""
    wrong = sorted(f"{mod} imports {dep}" for mod, deps in _graph().items() for dep in deps
                   if dep.startswith("seg_ros.") and _room(dep) in NEVER.get(_room(mod), set()))
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_rclpy_and_torch_stay_in_their_rooms() -> None:
    wrong = sorted(f"{mod} imports {dep}" for mod, deps in _graph().items() for dep in deps
                   for guarded, allowed in GUARDED.items()
                   if dep.split(".")[0] == guarded
                   and not any(mod == a or mod.startswith(a + ".") for a in allowed))
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------------------ function size


def _long_functions(root: Path, limit: int) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        if GENERATED in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_over_80_lines() -> None:
    long = _long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


# ------------------------------------------------------------------------------ duplicates

_TRIVIAL = re.compile(r"^([)\]}:,]*|else:|try:|finally:|return|pass|\"\"\"|.*import .*|"
                      r"[\w.]+,|from .* import \($)$")


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the lines that are not blank or comments: a copy
    re-indented or with other blank lines is still a copy."""
    out = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#"):
            out.append((no, text))
    return out


def _duplicate_blocks(roots: list[Path], size: int, base: Path = REPO) -> list[str]:
    """Places (path:line, relative to ``base``) where the same ``size`` code lines stand
    again, one entry per repeated block; blocks made mostly of imports, brackets and bare
    keywords do not count."""
    seen: dict[tuple[str, ...], list[tuple[Path, int]]] = defaultdict(list)
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if GENERATED in path.parents:
                continue
            lines = _code_lines(path)
            for i in range(len(lines) - size + 1):
                block = tuple(t for _, t in lines[i:i + size])
                if sum(not _TRIVIAL.match(t) for t in block) >= size - 1:
                    seen[block].append((path, lines[i][0]))
    repeated = {tuple(d) for places in seen.values() if len(d := _apart(places, size)) > 1}
    # a longer copy shows as overlapping windows: keep the first window of each run
    starts = [r for r in repeated if not any(
        len(o) == len(r) and all(po == pr and 0 < nr - no < size
                                 for (po, no), (pr, nr) in zip(o, r)) for o in repeated)]
    return sorted(" = ".join(f"{p.relative_to(base)}:{n}" for p, n in r) for r in starts)


def _apart(places: list[tuple[Path, int]], size: int) -> list[tuple[Path, int]]:
    """Occurrences that do not overlap each other (a run of repeated lines is one place)."""
    out: list[tuple[Path, int]] = []
    for path, no in places:
        if not any(p == path and abs(n - no) < size for p, n in out):
            out.append((path, no))
    return out


def test_duplicate_finder_finds_a_copy(tmp_path: Path) -> None:
    body = "\n".join(f"    total = total + {k} * scale_{k}" for k in range(6))
    (tmp_path / "a.py").write_text(f"def f():\n{body}\n")
    (tmp_path / "b.py").write_text(f"def g():\n    x = 1\n{body}\n")
    (tmp_path / "c.py").write_text(f"def h():\n{body[:-1]}\n")  # the last line differs
    assert _duplicate_blocks([tmp_path], BLOCK_LINES, tmp_path) == ["a.py:2 = b.py:3"]


def test_no_block_of_six_lines_written_twice() -> None:
    dups = _duplicate_blocks([PACKAGE, REPO / "benchmarks", REPO / "test"], BLOCK_LINES)
    assert not dups, (f"blocks of {BLOCK_LINES}+ code lines written more than once (make one "
                      "helper):\n" + "\n".join(dups))
