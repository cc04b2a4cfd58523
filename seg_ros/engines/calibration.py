"""Calibration frames for int8: one reader shared by the TensorRT entropy calibrator
(:mod:`seg_ros.engines.tensorrt.build`) and the onnxruntime static quantizer
(:mod:`seg_ros.engines.quantize`); an int8 TensorRT build runs one or the other when it opens
a float model, so this is engine code, not offline preparation.

Frames are turned into engine inputs by :class:`seg_ros.preprocess.Preprocessor` -- the exact
pre-processing the segmenter runs in the node -- so the int8 ranges are measured on the same
distribution the engine will see (resize, mean/std, channel order). Using any other
pre-processing here silently shifts the activation ranges and costs accuracy. No torch, no TensorRT.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seg_ros.errors import ConfigError
from seg_ros.frames import list_images, read_rgb
from seg_ros.model_card import ModelCard
from seg_ros.preprocess import Preprocessor


def preprocessor(card: ModelCard) -> Preprocessor:
    """The pre-processing the segmenter runs for ``card``: ``.preprocess(rgb)`` gives the
    engine's (1, 3, H, W) float32 input."""
    return Preprocessor(card, card.input_size)


def list_frames(folder: str | Path, limit: int | None = None, option: str = "--calib-data"
                ) -> list[Path]:
    """Images of ``folder`` (sorted by name), ``limit`` of them spread evenly over the folder.

    Even spreading (not the first N) matters for video-ordered sets like CamVid, where
    consecutive frames are near-duplicates of one scene.
    """
    if not Path(folder).is_dir():
        raise ConfigError(f"{option} {folder} is not a folder: give a folder of RGB frames "
                          "(e.g. the dataset's train split; never the evaluation split)")
    frames = list_images(folder, option)
    if limit is not None:
        if limit <= 0:
            raise ConfigError(f"--calib-frames {limit} must be > 0 (100 is typical)")
        if limit < len(frames):
            idx = np.linspace(0, len(frames) - 1, limit).round().astype(int)
            frames = [frames[i] for i in idx]
    return frames


class CalibrationBatches:
    """Frames -> contiguous float32 batches (batch_size, 3, H, W) via ``Preprocessor.preprocess``.

    A fixed-shape engine cannot take a short batch, so a partial last batch is dropped
    (``drop_last``, the default) or filled up by repeating frames from the start of the set.
    """

    def __init__(self, frames: list[Path], card: ModelCard, batch_size: int = 1,
                 drop_last: bool = True) -> None:
        if batch_size <= 0:
            raise ConfigError(f"calibration batch size {batch_size} must be > 0")
        if len(frames) < batch_size:
            raise ConfigError(
                f"{len(frames)} calibration frames cannot fill one batch of {batch_size}: "
                "give more frames (--calib-frames) or a folder with more images"
            )
        self.frames = list(frames)
        self.card = card
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.shape: tuple[int, int, int, int] = card.input_shape(batch_size)  # card's layout
        self._pre = preprocessor(card)

    def __len__(self) -> int:
        full, rest = divmod(len(self.frames), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    @property
    def frames_used(self) -> int:
        """Distinct frames that reach the calibrator."""
        return min(len(self.frames), len(self) * self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        n = len(self) * self.batch_size
        order = [self.frames[i % len(self.frames)] for i in range(n)]
        for start in range(0, n, self.batch_size):
            batch = np.empty(self.shape, np.float32)  # fresh: callers may keep it
            for j, path in enumerate(order[start:start + self.batch_size]):
                batch[j] = self._pre.preprocess(read_rgb(path))[0]
            yield batch
