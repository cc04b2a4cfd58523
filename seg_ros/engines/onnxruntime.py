"""ONNX Runtime backend: CPU, or the CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg_ros.engines.outputs import OutputSpec, check_card_outputs, ort_kind
from seg_ros.errors import EngineError
from seg_ros.model_card import (
    METADATA_KEY,
    ModelCard,
    card_from_onnx_metadata,
    read_sidecar,
    sidecar_path,
)

# device -> execution providers, most preferred first (CPU always last as the fallback)
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def providers_for(device: str, available: list[str], trt_cache_dir: str | None = None,
                  precision: str = "fp16", ort_version: str | None = None) -> list:
    """Execution providers for ``device`` ('cpu', 'cuda', 'cuda:N', 'tensorrt'), checked
    against what this onnxruntime build offers. The TensorRT provider runs ``precision``
    (fp16 by default, as the TensorRT backend; its own default is fp32)."""
    kind, _, index = device.partition(":")
    if kind not in DEVICE_PROVIDERS:
        raise EngineError(
            f"unknown device {device!r} for onnxruntime: use cpu, cuda, cuda:N or tensorrt"
        )
    wanted = DEVICE_PROVIDERS[kind]
    if wanted[0] not in available:
        raise EngineError(
            f"onnxruntime here has no {wanted[0]} (available: {', '.join(available)}): "
            f"{shadowing_hint() or 'install onnxruntime-gpu with matching CUDA/TensorRT'}, "
            "or use device 'cpu'"
        )
    return [_with_options(p, index, trt_cache_dir, precision, ort_version) for p in wanted]


def _with_options(provider: str, index: str, trt_cache_dir: str | None, precision: str,
                  ort_version: str | None) -> str | tuple[str, dict[str, str]]:
    opts: dict[str, str] = {}
    if provider != "CPUExecutionProvider" and index:
        opts["device_id"] = index
    if provider == "TensorrtExecutionProvider":
        opts.update(tensorrt_provider_options(precision, trt_cache_dir, ort_version))
    return (provider, opts) if opts else provider


def tensorrt_provider_options(precision: str, cache_dir: str | None,
                              ort_version: str | None = None) -> dict[str, str]:
    """Options of onnxruntime's TensorRT provider: fp16/int8 flags and the engine cache;
    ``trt_timing_cache_path`` only from onnxruntime 1.17 on (older ones refuse the session)."""
    if precision not in ("fp32", "fp16", "int8"):
        raise EngineError(f"precision {precision!r}: choose fp32, fp16 or int8")
    opts = {"trt_fp16_enable": str(precision != "fp32")}
    if precision == "int8":
        opts["trt_int8_enable"] = "True"
    if cache_dir:
        opts.update(trt_engine_cache_enable="True", trt_engine_cache_path=cache_dir,
                    trt_timing_cache_enable="True")
        if _version_tuple(ort_version or _ort_version()) >= (1, 17):
            opts["trt_timing_cache_path"] = cache_dir
    return opts


CACHE_OPTIONS = ("trt_engine_cache_path", "trt_timing_cache_path")


def make_cache_dirs(providers: list) -> None:
    """Create the TensorRT provider's cache folders, the whole tree: the provider itself makes
    only the last level, and on a fresh machine (``~/.cache/seg_ros/engines``) it fails and the
    session silently runs on CUDA instead. EngineError naming the folder when it cannot."""
    for p in providers:
        if isinstance(p, str):
            continue
        for key in CACHE_OPTIONS:
            if key in p[1]:
                try:
                    Path(p[1][key]).expanduser().mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise EngineError(f"TensorRT engine cache folder {p[1][key]} cannot be made "
                                      f"({e.strerror}): set engine_cache_dir to a writable "
                                      "folder") from None


def preload_gpu_libraries(ort: object, device: str) -> None:
    """``onnxruntime.preload_dlls()`` (onnxruntime-gpu >= 1.21) for a GPU device: loads the
    CUDA and cuDNN libraries of the nvidia-* pip wheels so the CUDA provider finds them without
    LD_LIBRARY_PATH. Where they come from the system (JetPack, a CUDA install) it finds none
    and the system ones load as before; a failure here is left to the provider report."""
    preload = getattr(ort, "preload_dlls", None)
    if device == "cpu" or preload is None:
        return
    try:
        preload(cuda=True, cudnn=True, msvc=False)
    except Exception:  # the session's provider check reports what did not load
        return


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())


def onnxruntime_distributions() -> list[str]:
    """Installed distributions that provide the ``onnxruntime`` module (CPU, GPU, Jetson)."""
    from seg_ros.engines.gpu import package_version

    names = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
    return [n for n in names if package_version(n) is not None]


def shadowing_hint(dists: list[str] | None = None) -> str | None:
    """The fix when the CPU ``onnxruntime`` and a GPU build are both installed: they share one
    module folder, and whichever was installed last wins (often the CPU one, pulled in by a
    requirements file); None when there is no such clash."""
    dists = onnxruntime_distributions() if dists is None else dists
    gpu = [d for d in dists if d != "onnxruntime"]
    if "onnxruntime" not in dists or not gpu:
        return None
    return (f"both onnxruntime and {gpu[0]} are installed and the CPU one may shadow the GPU "
            f"one: pip uninstall -y onnxruntime {gpu[0]} && pip install {gpu[0]}")


def session_log_level(device: str) -> int:
    """onnxruntime log severity: warnings (2) when a GPU provider is asked, so its own line
    about a provider that failed to load is seen; errors only (3) on the CPU."""
    return 3 if device == "cpu" else 2


def _provider_name(p: str | tuple[str, dict[str, str]]) -> str:
    return p if isinstance(p, str) else p[0]


def provider_report(asked: list, active: list[str]) -> str | None:
    """None when the session runs the provider asked first; else the warning that onnxruntime
    silently fell back (a CUDA provider whose libraries did not load runs on the CPU)."""
    first = _provider_name(asked[0]) if asked else "CPUExecutionProvider"
    if active and active[0] == first:
        return None
    now = active[0] if active else "no provider"
    hint = shadowing_hint() or ("check that the CUDA, cuDNN (and TensorRT) libraries "
                                "onnxruntime-gpu needs are installed and on LD_LIBRARY_PATH")
    return f"asked {first} but onnxruntime runs {now}: {hint}"


class OnnxRuntimeEngine:
    """An onnxruntime InferenceSession with the model card the file carries."""

    backend = "onnxruntime"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0,
                 trt_cache_dir: str | None = None, spin: bool = False, precision: str = "fp16",
                 **_: object) -> None:
        """``spin``: let idle intra-op threads busy-wait for work (ORT's default). Off here: in
        the node the spinning threads compete with its own threads (render, publish, DDS) and
        other processes. Measured on 2 shared cores, threads=2, two nodes interleaved under a
        4x flood: spinning off 35.8 vs 30.2 frames/s out, p99 57 vs 69 ms. Back-to-back
        inference alone on an idle machine is faster with spinning (bench_model
        ``no_spinning_speedup_quiet`` ~0.8); ``spin=True`` restores it."""
        import onnxruntime as ort

        self.path = Path(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = session_log_level(device)
        providers = providers_for(device, ort.get_available_providers(), trt_cache_dir,
                                  precision)
        make_cache_dirs(providers)
        preload_gpu_libraries(ort, device)
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(e).strip().splitlines()[0][:200]
            raise EngineError(
                f"{path} is not a loadable ONNX model ({first}): re-export it with "
                "`seg-ros export` or re-copy the file"
            ) from None
        self.card: ModelCard = session_card(self.session, path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = engine_input_shape(inp.shape, self.card, path)
        self.max_batch = graph_batch(inp.shape)
        self.output_names = [o.name for o in self.session.get_outputs()]
        check_card_outputs(self.card, self._output_specs(), str(path))
        self.providers = self.session.get_providers()
        self._device = device
        self.provider_note = provider_report(providers, self.providers)
        self.selection_note: str | None = None  # set by backend 'auto' when it fell back

    def _output_specs(self) -> list[OutputSpec]:
        """Output names, dtypes and shapes; dynamic shapes are measured by running the graph
        once on a zero batch (which also warms it up)."""
        outs = self.session.get_outputs()
        shapes = [tuple(d if isinstance(d, int) else None for d in o.shape) for o in outs]
        if any(None in s for s in shapes):
            values = self.session.run(None, {self.input_name: np.zeros(self.input_shape,
                                                                       np.float32)})
            shapes = [tuple(v.shape) for v in values]
        return [OutputSpec(o.name, s, ort_kind(o.type)) for o, s in zip(outs, shapes)]

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or self.output_names
        values = self.session.run(names, {self.input_name: batch})
        return dict(zip(names, values))

    def describe(self) -> str:
        """The provider that really runs, and why it is not the one asked for, if so."""
        notes = [n for n in (self.provider_note, self.selection_note) if n]
        return f"onnxruntime {self.providers[0]} ({self._device})" + \
            "".join(f"; {n}" for n in notes)


def session_card(session: object, path: Path) -> ModelCard:
    """The card in the model's metadata (read through onnxruntime: no ``onnx`` package at run
    time), else the JSON sidecar next to the file."""
    meta = session.get_modelmeta().custom_metadata_map  # type: ignore[attr-defined]
    if sidecar_path(path).is_file() and METADATA_KEY not in meta:
        return read_sidecar(path)
    return card_from_onnx_metadata(meta, str(path))


def graph_batch(graph_shape: list) -> int:
    """Frames one call takes: the graph's fixed batch size N, or 0 when the batch dimension is
    dynamic (any number of frames in one call)."""
    n = graph_shape[0] if graph_shape else 1
    return n if isinstance(n, int) and n > 0 else 0


def engine_input_shape(graph_shape: list, card: ModelCard, path: Path
                       ) -> tuple[int, int, int, int]:
    """(1, 3, H, W), or (1, H, W, 3) for a card with ``input_layout: nhwc``, the engine runs:
    the graph's static size, or the card's input_size for the dynamic dimensions. A static
    size or channel axis that disagrees with the card is refused."""
    nhwc = card.input_layout == "nhwc"
    c_axis, h_axis, w_axis = (3, 1, 2) if nhwc else (1, 2, 3)
    if len(graph_shape) != 4 or (isinstance(graph_shape[c_axis], int)
                                 and graph_shape[c_axis] != 3):
        other = "nchw" if nhwc else "nhwc"
        hint = (f"fix the card with `seg-ros card {path} --input-layout {other}`"
                if len(graph_shape) == 4 and graph_shape[3 if not nhwc else 1] == 3 else
                "seg_ros runs RGB/BGR image models; re-export it with an (N, 3, H, W) or "
                "(N, H, W, 3) image input")
        raise EngineError(f"{path}: graph input {graph_shape} is not "
                          f"{'(N, H, W, 3)' if nhwc else '(N, 3, H, W)'} as the card's "
                          f"input_layout {card.input_layout} says: {hint}")
    h, w = card.input_size
    gh, gw = graph_shape[h_axis], graph_shape[w_axis]
    for graph_dim, card_dim, what in ((gh, h, "height"), (gw, w, "width")):
        if isinstance(graph_dim, int) and graph_dim != card_dim:
            raise EngineError(
                f"{path}: graph input {what} is {graph_dim} but the card says {card_dim}: fix "
                f"it with `seg-ros card {path} --input-size {gh}x{gw}`")
    return card.input_shape()
