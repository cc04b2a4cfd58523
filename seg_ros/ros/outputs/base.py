"""The Output protocol: what one output topic (or a family of them: raw and compressed, one per
camera) plugs into the node, and the frame result the worker hands every output.

The worker walks the registry (seg_ros.ros.outputs.REGISTRY) for each frame: an output that is
``wanted`` (somebody subscribes and it is switched on) or ``required`` by a wanted one, and
``ready`` (its inputs are there: camera_info, a pose, ...), runs; the frame is computed only
when some output that may run ``alone`` does (camera_info rides along). What they need decides
what the engine is asked for (``needs_confidence``) and at which size (``input_size``: the
camera's, for the floor). Each runs as a stage of its own (seg_ros.ros.stages): its failure
costs only its own output. ``expected`` names the topics the watchdog holds to account,
``stall_reason`` says why one of them is silent, ``health`` adds conditions to /diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from std_msgs.msg import Header

from seg_ros.pipeline import StageTimer
from seg_ros.ros.param_groups import ParamGroup

Health = list[tuple[int, str]]  # (diagnostic level, message) conditions of this period


@dataclass
class FrameResult:
    """One frame's results at the output size, filled as the outputs compute them.

    ``products``: what an output leaves for the ones after it (the floor grid's cells for the
    fused map). :meth:`at_input_size` gives the labels (and confidence) at the camera's size,
    computed once, for the outputs that project pixels with the camera's calibration."""

    rgb: np.ndarray            # the camera image at the output size
    labels: np.ndarray         # class ids at the output size
    confidence: np.ndarray | None
    header: Header
    seq: int
    camera: Any                # seg_ros.ros.cameras.Camera
    timer: StageTimer
    live: Any                  # the LiveSettings snapshot taken with the frame
    color: np.ndarray | None = None
    products: dict[str, Any] = field(default_factory=dict)
    engine_outputs: dict[str, np.ndarray] = field(default_factory=dict)
    segmenter: Any = None
    in_hw: tuple[int, int] = (0, 0)
    _at_input: tuple[np.ndarray, np.ndarray | None] | None = None

    def at_input_size(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels, confidence or None) at the camera image's size."""
        if self._at_input is None:
            if self.labels.shape[:2] == self.in_hw or self.segmenter is None:
                self._at_input = (self.labels, self.confidence)
            else:
                with self.timer("postprocess"):
                    seg, out = self.segmenter, self.engine_outputs
                    self._at_input = (seg.labels(out, self.in_hw),
                                      seg.confidence(out, self.in_hw)
                                      if self.confidence is not None else None)
        return self._at_input


class Output(Protocol):
    """One output of the node (see the module docstring). Built once when the node is built
    (publishers), ``configure``d when the model is loaded; runs on the worker threads."""

    name: ClassVar[str]                  # the stage's name (failures, logs)
    alone: ClassVar[bool]                # a frame is computed for it alone
    requires: ClassVar[tuple[str, ...]]  # outputs it is made from (they run first)

    @classmethod
    def param_groups(cls, cameras: tuple[str, ...]) -> list[ParamGroup]: ...

    def configure(self, card: Any) -> None: ...

    def wanted(self, cam: Any, live: Any) -> bool: ...

    def ready(self, cam: Any, live: Any) -> bool: ...

    def needs_confidence(self, cam: Any, live: Any) -> bool: ...

    def publish(self, frame: FrameResult) -> None: ...

    def expected(self, live: Any) -> list[str]: ...

    def stall_reason(self, output: str) -> str: ...

    def health(self) -> Health: ...

    def diagnostics_values(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class OutputBase:
    """Defaults of the Output protocol; ``host`` is the node (seg_ros.ros.node.SegmentationCore:
    its cameras, card, palette, watchdog, stats, inputs and ROS node API)."""

    name: ClassVar[str] = ""
    alone: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, host: Any) -> None:
        self.host = host

    @classmethod
    def param_groups(cls, cameras: tuple[str, ...]) -> list[ParamGroup]:
        return []

    def configure(self, card: Any) -> None:
        return None

    def ready(self, cam: Any, live: Any) -> bool:
        return True

    def needs_confidence(self, cam: Any, live: Any) -> bool:
        return False

    def expected(self, live: Any) -> list[str]:
        return []

    def stall_reason(self, output: str) -> str:
        return ""

    def health(self) -> Health:
        return []

    def diagnostics_values(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        return None
