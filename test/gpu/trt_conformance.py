"""The real TensorRT / cuda-python / onnxruntime-gpu Python bindings, made importable on a
machine without a GPU, for test_trt_conformance.

- TensorRT: the ``tensorrt-cu12-bindings`` wheels (``tensorrt_bindings/tensorrt.so``, the real
  pybind11 module) need libnvinfer / libnvonnxparser / libnvinfer_plugin. The symbols they take
  from those libraries are read from the module (``nm -D --undefined-only``: the factory
  functions ``createInferBuilder_INTERNAL`` ...), and link-only stand-ins exporting each of them
  as a function returning NULL are compiled with gcc under the sonames ``readelf`` lists. The
  module then imports for real, its enums and docstrings are the real ones, and every object
  factory fails as on a machine whose TensorRT cannot start (``trt.Builder`` raises the real
  ``TypeError: pybind11::init(): factory function returned nullptr``).
- cuda-python: the ``cuda-bindings`` 12.x wheel (13.x is the venv's), imported with no driver.
- onnxruntime-gpu: the option names its TensorRT provider parses, read from the strings of
  ``libonnxruntime_providers_tensorrt.so`` in the wheel, and the libraries it links.

Everything is downloaded once with ``pip download`` into :data:`CACHE` (outside the venv and the
repository; ``SEG_ROS_TEST_CACHE`` moves it) and reused: a second run does no network I/O.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

CACHE = Path(os.environ.get("SEG_ROS_TEST_CACHE",
                            Path.home() / ".cache" / "seg_ros" / "conformance"))
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64")


@dataclass(frozen=True)
class Bindings:
    """One real TensorRT bindings release: the wheel to fetch and the library major it links."""

    dist: str
    version: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def label(self) -> str:
        return f"{self.dist}=={self.version}"


# JetPack 6's TensorRT, the newest 10.x and the newest 11.x on PyPI when this was written
TENSORRT = (Bindings("tensorrt-cu12-bindings", "10.3.0"),
            Bindings("tensorrt-cu12-bindings", "10.16.1.11"),
            Bindings("tensorrt-cu12-bindings", "11.4.0.106"))
CUDA_BINDINGS_12 = "cuda-bindings==12.9.10"  # the newest CUDA 12 cuda-python
ONNXRUNTIME_GPU = "onnxruntime-gpu==1.26.0"  # the last CUDA 12 / TensorRT 10 build on PyPI


def _download(spec: str, into: Path) -> Path:
    """The wheel of ``spec`` for CPython 3.11 x86_64 Linux, downloaded into ``into`` once."""
    name = spec.split("==")[0].replace("-", "_")
    version = spec.split("==")[1]
    found = sorted(into.glob(f"{name}-{version}-*.whl"))
    if found:
        return found[0]
    into.mkdir(parents=True, exist_ok=True)
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.11", *platforms,
                    "-d", str(into), spec], check=True, timeout=600)
    return sorted(into.glob(f"{name}-{version}-*.whl"))[0]


def _extract(wheel: Path, into: Path, members: list[str] | None = None) -> Path:
    done = into / ".extracted"
    if not done.is_file():
        with zipfile.ZipFile(wheel) as z:
            z.extractall(into, members)
        done.write_text(wheel.name)
    return into


def undefined_symbols(module: Path) -> list[str]:
    """The unversioned undefined dynamic symbols of ``module``: what its TensorRT libraries
    must provide (versioned ones, ``dlopen@GLIBC..``, come from the system)."""
    out = subprocess.run(["nm", "-D", "--undefined-only", "--with-symbol-versions", str(module)],
                         check=True, capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1]:
            syms.append(parts[1])
    return sorted(syms)


def needed_libraries(library: Path) -> list[str]:
    """The sonames ``library`` links (readelf's NEEDED entries)."""
    out = subprocess.run(["readelf", "-d", str(library)], check=True, capture_output=True,
                         text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def stand_in_libraries(module: Path, into: Path) -> Path:
    """Link-only libnv* stand-ins for ``module``: every symbol it takes from them, a function
    returning NULL, compiled once per soname ``module`` needs. Returns their folder."""
    sonames = [n for n in needed_libraries(module) if n.startswith("libnv")]
    into.mkdir(parents=True, exist_ok=True)
    if all((into / n).is_file() for n in sonames):
        return into
    source = into / "stand_in.c"
    source.write_text("/* link-only TensorRT stand-ins: every factory returns NULL */\n" + "".join(
        f"void *{sym}(void) {{ return 0; }}\n" for sym in undefined_symbols(module)
        if not sym.startswith(("Py", "_Py", "dl", "pthread"))))
    for soname in sonames:
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(into / soname),
                        f"-Wl,-soname,{soname}", str(source)], check=True, timeout=120)
    return into


@dataclass(frozen=True)
class Prepared:
    """What a subprocess needs to import one real module: PYTHONPATH and LD_LIBRARY_PATH."""

    label: str
    pythonpath: Path
    ld_library_path: Path | None = None


def tensorrt_bindings(b: Bindings) -> Prepared:
    root = CACHE / "tensorrt" / b.version
    wheel = _download(b.label, CACHE / "wheels")
    _extract(wheel, root / "site")
    module = root / "site" / "tensorrt_bindings" / "tensorrt.so"
    return Prepared(b.label, root / "site", stand_in_libraries(module, root / "lib"))


def cuda_bindings_12() -> Prepared:
    wheel = _download(CUDA_BINDINGS_12, CACHE / "wheels")
    return Prepared(CUDA_BINDINGS_12, _extract(wheel, CACHE / "cuda-bindings-12"))


class OrtGpuFacts(TypedDict):
    """What onnxruntime-gpu's TensorRT provider library says of itself."""

    version: str
    trt_options: list[str]  # the option names its TensorRT provider parses
    trt_needs: list[str]  # the sonames the provider links


def onnxruntime_gpu_facts() -> OrtGpuFacts:
    """The facts of the pinned onnxruntime-gpu, read from the wheel once and kept as JSON (the
    280 MB wheel is deleted once the provider library is out of it)."""
    facts = CACHE / f"{ONNXRUNTIME_GPU.replace('==', '-')}.json"
    if facts.is_file():
        kept = json.loads(facts.read_text())
        return OrtGpuFacts(version=kept["version"], trt_options=kept["trt_options"],
                           trt_needs=kept["trt_needs"])
    lib = "onnxruntime/capi/libonnxruntime_providers_tensorrt.so"
    root = CACHE / "ort-provider" / ONNXRUNTIME_GPU.split("==")[1]
    if not (root / lib).is_file():
        wheel = _download(ONNXRUNTIME_GPU, CACHE / "ort-wheel")
        _extract(wheel, root, [lib])
        wheel.unlink()
    strings = re.findall(rb"[\x20-\x7e]{4,}", (root / lib).read_bytes())  # as strings(1)
    names = sorted({t.decode() for t in strings if re.fullmatch(rb"trt_[a-z0-9_]+|device_id", t)})
    out = OrtGpuFacts(version=ONNXRUNTIME_GPU.split("==")[1], trt_options=names,
                      trt_needs=needed_libraries(root / lib))
    facts.write_text(json.dumps(out, indent=1))
    return out


def run_probe(prepared: Prepared, *args: str, timeout: float = 120) -> dict:
    """Run test/gpu/trt_probe.py with ``prepared`` importable; its JSON report."""
    here = Path(__file__).resolve().parent
    env = dict(os.environ)
    # the repository (seg_ros) and test/ (the stand-in fake_tensorrt) after the bindings
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (prepared.pythonpath, here.parents[1],
                                                         here.parent, here))
    if prepared.ld_library_path is not None:
        env["LD_LIBRARY_PATH"] = str(prepared.ld_library_path)
    proc = subprocess.run([sys.executable, str(here / "trt_probe.py"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"probe of {prepared.label} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
