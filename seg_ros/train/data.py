"""Image/label folder datasets for training and evaluation.

Layouts (per split, files paired by name stem, e.g. ``0001TP_006690.png`` <-> ``.jpg``):
  * CamVid: ``ROOT/<split>/`` frames and ``ROOT/<split>annot/`` labels;
  * generic: ``ROOT/<split>/images/`` and ``ROOT/<split>/labels/``.
Labels are class-index PNGs (8-bit ids) or colour PNGs mapped through the dataset palette.
The dataset spec (YAML/JSON: classes, colours, traversable ids, ignore index) comes from
``ROOT/dataset.yaml`` (or ``.json``) if present, else ``config/camvid_dataset.yaml``.
Every problem raises ConfigError naming the file and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from seg_ros.dataset_spec import DatasetSpec, find_dataset_spec
from seg_ros.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
LABEL_EXTS = (".png", ".bmp")


def default_data_dir() -> Path:
    """$SEG_ROS_CAMVID, else ../shared/datasets/camvid next to the repo."""
    env = os.environ.get("SEG_ROS_CAMVID")
    return Path(env) if env else REPO.parent / "shared" / "datasets" / "camvid"


def split_dirs(root: str | Path, split: str) -> tuple[Path, Path]:
    """(image folder, label folder) of ``split`` in either supported layout."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"dataset folder {root} does not exist: pass --data DIR (or set "
                          "SEG_ROS_CAMVID) pointing at a folder with train/ and val/")
    camvid = (root / split, root / f"{split}annot")
    generic = (root / split / "images", root / split / "labels")
    for images, labels in (generic, camvid):
        if images.is_dir() and labels.is_dir():
            return images, labels
    raise ConfigError(
        f"dataset split {split!r} not found in {root}: expected {camvid[0]}/ + {camvid[1]}/ "
        f"(CamVid layout) or {generic[0]}/ + {generic[1]}/; create them or pick another --split")


def pair_files(images_dir: Path, labels_dir: Path) -> list[tuple[Path, Path]]:
    """Image/label pairs matched by file stem; mismatches raise naming the odd files."""
    imgs = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTS}
    labs = {p.stem: p for p in sorted(labels_dir.iterdir()) if p.suffix.lower() in LABEL_EXTS}
    if not imgs:
        raise ConfigError(f"no images ({', '.join(IMAGE_EXTS)}) in {images_dir}: put the frames "
                          "there or fix --data")
    only_img = sorted(set(imgs) - set(labs))
    only_lab = sorted(set(labs) - set(imgs))
    if only_img or only_lab:
        first = [str(imgs[s]) for s in only_img[:3]] + [str(labs[s]) for s in only_lab[:3]]
        raise ConfigError(
            f"{len(imgs)} images in {images_dir} but {len(labs)} labels in {labs and labels_dir}"
            f" ({len(only_img)} images without a label, {len(only_lab)} labels without an image,"
            f" e.g. {first}): give every image a label with the same file name stem")
    return [(imgs[s], labs[s]) for s in sorted(imgs)]


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ConfigError(f"cannot decode image {path}: re-copy or remove the file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: Path, spec: DatasetSpec) -> np.ndarray:
    """Class ids uint8 (H, W); validates the ids (or maps colours) against ``spec``."""
    if spec.label_format == "color":
        raw = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if raw is None:
            raise ConfigError(f"cannot decode label {path}: re-copy or remove the file")
        return colors_to_ids(cv2.cvtColor(raw, cv2.COLOR_BGR2RGB), spec, path)
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise ConfigError(f"cannot decode label {path}: re-copy or remove the file")
    if lab.ndim != 2:
        raise ConfigError(f"label {path} has {lab.shape[2]} channels but the dataset spec says "
                          "label_format: index (one 8-bit id per pixel): set label_format: color "
                          f"in {spec.source or 'the dataset spec'} or convert the labels")
    bad = np.unique(lab[lab >= spec.num_classes])
    if spec.ignore_index is not None:
        bad = bad[bad != spec.ignore_index]
    if bad.size:
        raise ConfigError(
            f"label {path} has class ids {bad.tolist()[:10]} outside 0..{spec.num_classes - 1} "
            f"(ignore index {spec.ignore_index}): fix the label file or add the classes / set "
            f"ignore_index in {spec.source or 'the dataset spec'}")
    return lab.astype(np.uint8)


def colors_to_ids(rgb: np.ndarray, spec: DatasetSpec, path: Path) -> np.ndarray:
    """Map an RGB label image to ids via the palette; unknown colours raise."""
    rgb32 = rgb.astype(np.int32)
    packed = (rgb32[..., 0] << 16) | (rgb32[..., 1] << 8) | rgb32[..., 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(spec.colors)}
    if spec.void_color is not None and spec.ignore_index is not None:
        r, g, b = spec.void_color
        table[(r << 16) | (g << 8) | b] = spec.ignore_index
    out = np.full(rgb.shape[:2], 255, np.uint8)
    uniq, inv = np.unique(packed, return_inverse=True)
    unknown = [int(u) for u in uniq if int(u) not in table]
    if unknown:
        shown = [((u >> 16) & 255, (u >> 8) & 255, u & 255) for u in unknown[:5]]
        raise ConfigError(f"label {path} has colours {shown} not in the palette: add them to "
                          f"{spec.source or 'the dataset spec'} classes (or as void_color)")
    lut = np.array([table[int(u)] for u in uniq], np.uint8)
    out = lut[inv.reshape(rgb.shape[:2])]
    return out


def load_pair(img_path: Path, lab_path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    img, lab = read_image(img_path), read_label(lab_path, spec)
    if img.shape[:2] != lab.shape:
        raise ConfigError(f"image {img_path} is {img.shape[1]}x{img.shape[0]} but its label "
                          f"{lab_path} is {lab.shape[1]}x{lab.shape[0]}: labels must have the "
                          "frame's size; re-export the label or resize it with nearest")
    return img, lab


Transform = Callable[[np.ndarray, np.ndarray, int | None], tuple[np.ndarray, np.ndarray]]


class SegmentationDataset:
    """A split held decoded in RAM (CamVid train is ~190 MB), so epochs cost no PNG decoding.

    ``transform(image, label, seed)`` returns (float32 CHW normalised image, int64 HW label).
    Indexing with ``(index, seed)`` makes augmentation reproducible (resume, DDP).
    """

    def __init__(self, root: str | Path, split: str, spec: DatasetSpec | None = None,
                 transform: Transform | None = None, threads: int = 8,
                 limit: int | None = None) -> None:
        self.root, self.split = Path(root), split
        self.spec = spec or find_dataset_spec(root)
        images_dir, labels_dir = split_dirs(root, split)
        self.pairs = pair_files(images_dir, labels_dir)[:limit]
        self.transform = transform
        with ThreadPoolExecutor(max(1, threads)) as pool:  # cv2 decoding releases the GIL
            loaded = list(pool.map(lambda p: load_pair(p[0], p[1], self.spec), self.pairs))
        self.images = [a for a, _ in loaded]
        self.labels = [b for _, b in loaded]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        img, lab = self.images[index], self.labels[index]
        if self.transform is not None:
            return self.transform(img, lab, seed)
        return img, lab

    def class_pixel_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(pixels of each class, pixels of the images containing that class), for weighting."""
        c = self.spec.num_classes
        counts = np.zeros(c, np.int64)
        present = np.zeros(c, np.int64)
        for lab in self.labels:
            n = np.bincount(lab.ravel(), minlength=256)[:c]
            counts += n
            present += np.where(n > 0, lab.size, 0)
        return counts, present


def median_frequency_weights(counts: np.ndarray, present: np.ndarray) -> np.ndarray:
    """SegNet's median-frequency balancing: w_c = median(f) / f_c, f_c = count_c / present_c.

    Classes never seen get weight 0 (they cannot contribute to the loss anyway).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = np.where(present > 0, counts / np.maximum(present, 1), 0.0)
    seen = freq > 0
    w = np.zeros_like(freq, dtype=np.float64)
    w[seen] = np.median(freq[seen]) / freq[seen]
    return w.astype(np.float32)
