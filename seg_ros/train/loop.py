"""Training loop: AdamW/SGD, poly/one-cycle LR, AMP (bf16) on CUDA, DDP via torchrun,
checkpoints (``last.pt`` every epoch, ``best.pt`` by val mIoU) and a run folder with
``metrics.json`` and PNG plots.

Checkpoints hold only tensors and plain data, so ``torch.load(weights_only=True)`` reads them.
Augmentation is seeded per (seed, epoch, sample), so a resumed run repeats exactly what an
uninterrupted one would do (bit-identical on CPU).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from seg_ros import metrics
from seg_ros.dataset_spec import find_dataset_spec
from seg_ros.errors import ConfigError
from seg_ros.train.checkpoint import CKPT_FORMAT, load_checkpoint, save_checkpoint
from seg_ros.train.data import SegmentationDataset, median_frequency_weights
from seg_ros.train.losses import build_loss
from seg_ros.train.models import build_model, load_imagenet, resolve_encoder_weights
from seg_ros.train.schedule import epochs_that_fit, lr_factor, time_limit_rates
from seg_ros.train.transforms import eval_transform, train_transform


@dataclass
class TrainConfig:
    """Everything that defines a run (stored in checkpoints and metrics.json)."""

    data: str
    out: str
    arch: str = "mnv2_fpn"
    arch_options: dict[str, Any] = field(default_factory=lambda: {"output_stride": 32,
                                                                 "width": 96})
    epochs: int = 200
    batch_size: int = 16          # global: split over DDP replicas
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"      # adamw | sgd
    schedule: str = "poly"        # poly | onecycle
    warmup_epochs: float = 2.0
    loss: str = "ohem:1.0,dice:0.5"
    encoder_weights: str = "imagenet"
    crop: tuple[int, int] = (360, 480)   # training crop (h, w), pixels
    base_scale: float = 1.0       # native input = frame x this (train scales x it; val resized)
    seed: int = 0
    device: str = "auto"
    workers: int = 4
    eval_every: int = 5           # epochs between val evaluations (and always the last one)
    amp: bool = True
    resume: bool = False
    limit: int | None = None      # use only the first N train frames (tests)
    val_limit: int | None = None
    max_steps: int | None = None  # stop after this many optimiser steps in total (tests)
    stop_epoch: int | None = None  # stop after this epoch as if interrupted (resume tests)
    time_limit: float | None = None  # minutes: after 5 epochs, shrink epochs to fit (GPU lease)
    command: str = ""


# ---------------------------------------------------------------------------- helpers


class SeededSampler(Sampler):
    """Wraps a DistributedSampler; yields ``(index, seed)`` so augmentation is reproducible."""

    def __init__(self, base: DistributedSampler, seed: int) -> None:
        self.base, self.seed, self.epoch = base, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def __iter__(self):
        for i in self.base:
            yield (i, (self.seed * 1_000_003 + self.epoch * 100_003 + int(i)) % (2**31 - 1))

    def __len__(self) -> int:
        return len(self.base)


def _collate(batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    y = torch.from_numpy(np.stack([b[1] for b in batch]))
    return x, y


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {spec} but CUDA is not available: use --device cpu")
    return torch.device(spec)


@torch.no_grad()
def evaluate(net: nn.Module, ds: SegmentationDataset, device: torch.device, num_classes: int,
             ignore_index: int | None, batch_size: int = 8, amp: bool = True) -> np.ndarray:
    """Confusion matrix of ``net`` on ``ds``, counted at the labels' resolution on device.

    When the images come smaller than their labels (``base_scale`` < 1) this mirrors the
    exported model + Segmenter: logits bilinear to the input size, argmax, nearest to the label.
    """
    net.eval()
    cm = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    use_amp = amp and device.type == "cuda"
    for start in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        x, y = _collate(items)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = net(x)
        logits = F.interpolate(logits.float(), size=x.shape[-2:], mode="bilinear",
                               align_corners=False)
        pred = logits.argmax(1)
        if pred.shape[-2:] != y.shape[-2:]:
            pred = F.interpolate(pred[:, None].float(), size=y.shape[-2:],
                                 mode="nearest")[:, 0].long()
        keep = (y >= 0) & (y < num_classes)
        if ignore_index is not None:
            keep &= y != ignore_index
        cm += torch.bincount(y[keep] * num_classes + pred[keep], minlength=num_classes ** 2)
    return cm.view(num_classes, num_classes).cpu().numpy()


def _log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------- training


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training run; returns the final metrics dict (rank 0)."""
    return Trainer(cfg).train()


class Trainer:
    """One training run: distributed set-up, data, model, resume, optimiser, the epochs with
    their evaluations and checkpoints, and the ``--time-limit`` budget.

    Set-up happens in the order an uninterrupted run always had (seeds before the model, the
    model before the optimiser), so runs stay bit-identical to earlier ones on CPU."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.last_path = self.out / "last.pt"
        self.step, self.start_epoch, self.best, self.wall = 0, 0, -1.0, 0.0
        self.history: list[dict[str, Any]] = []
        # --time-limit bookkeeping: seconds of each epoch without its evaluation, and of each
        # eval. The first epoch (worker start-up, cuDNN autotuning) and the first eval
        # (autotuning at the val size: ~5x a steady one) are not representative; counting both
        # into "s/epoch" once cut 240 epochs to 126 where ~210 fitted.
        self.epoch_times: list[float] = []
        self.eval_times: list[float] = []

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        self._distributed()
        self._data()
        ckpt = self._model()
        self._optimiser()
        self._loader()
        if ckpt is not None:
            self._resume(ckpt)
        self.t0 = time.perf_counter()
        fit_epoch = self.start_epoch + max(5, 2 * cfg.eval_every if cfg.eval_every <= 10 else 5)
        for epoch in range(self.start_epoch, cfg.epochs):
            if self.step >= self.total_steps:
                break
            t_epoch = time.perf_counter()
            train_loss = self._train_epoch(epoch)
            done = epoch + 1 >= cfg.epochs or self.step >= self.total_steps
            t_eval = self._end_epoch(epoch, train_loss, done)
            self.epoch_times.append(time.perf_counter() - t_epoch - t_eval)
            if cfg.time_limit and epoch + 1 == fit_epoch and not done:
                self._fit_time_limit(epoch)
            if self.world > 1:
                dist.barrier()
            if cfg.stop_epoch is not None and epoch + 1 >= cfg.stop_epoch:
                break
        return self._result()

    # ------------------------------------------------------------------ set-up

    def _distributed(self) -> None:
        """Rank, world size and device (torchrun's variables), the run folder, the seeds."""
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(self.cfg.device)
        if self.world > 1:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if self.device.type == "cuda":
                self.device = torch.device("cuda", local)
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.main = self.rank == 0
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.cfg.seed)
        np.random.seed(self.cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _data(self) -> None:
        """Dataset spec, card, train and val sets, median-frequency class weights."""
        cfg = self.cfg
        spec = self.spec = find_dataset_spec(cfg.data)
        if spec.ignore_index is None:
            raise ConfigError(f"dataset spec {spec.source} has no ignore_index: set one "
                              "(e.g. 255)")
        self.ignore_index: int = spec.ignore_index
        card = self.card = spec.card(input_size=(int(cfg.crop[0]), int(cfg.crop[1])))
        t_load = time.perf_counter()
        self.train_ds = SegmentationDataset(
            cfg.data, "train", spec,
            train_transform(cfg.crop, card.mean, card.std, spec.ignore_index,
                            base_scale=cfg.base_scale),
            limit=cfg.limit)
        self.val_ds = SegmentationDataset(cfg.data, "val", spec,
                                          eval_transform(card.mean, card.std, cfg.base_scale),
                                          limit=cfg.val_limit)
        self.weights = median_frequency_weights(*self.train_ds.class_pixel_counts())
        self._log(f"data: {len(self.train_ds)} train / {len(self.val_ds)} val frames from "
                  f"{cfg.data} ({time.perf_counter() - t_load:.1f} s); class weights "
                  f"{np.round(self.weights, 3).tolist()}")

    def _model(self) -> dict[str, Any] | None:
        """The network: from ``last.pt`` when resuming (its checkpoint is returned), else with
        ImageNet encoder weights; on the device, wrapped for DDP when distributed."""
        cfg = self.cfg
        net = self.net = build_model(cfg.arch, self.spec.num_classes, **cfg.arch_options)
        ckpt: dict[str, Any] | None = None
        if cfg.resume:
            if not self.last_path.is_file():
                raise ConfigError(f"--resume but {self.last_path} does not exist: drop --resume "
                                  "or point --out at the run folder to continue")
            ckpt = load_checkpoint(self.last_path)
            if ckpt["arch"] != cfg.arch or ckpt["arch_options"] != cfg.arch_options:
                raise ConfigError(f"{self.last_path} holds {ckpt['arch']} "
                                  f"{ckpt['arch_options']} but --arch is {cfg.arch} "
                                  f"{cfg.arch_options}: use the same --arch")
            net.load_state_dict(ckpt["model"])
        else:
            wpath = resolve_encoder_weights(cfg.encoder_weights)
            if wpath is not None:
                n = load_imagenet(net.encoder, wpath)  # type: ignore[arg-type]
                self._log(f"encoder: loaded {n} ImageNet tensors from {wpath} (all keys matched)")
        net.to(self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model: nn.Module = net
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return ckpt

    def _optimiser(self) -> None:
        """Loss and optimiser; no weight decay on biases and norm parameters."""
        cfg = self.cfg
        self.loss_fn = build_loss(cfg.loss, self.ignore_index,
                                  torch.from_numpy(self.weights)).to(self.device)
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for p in self.net.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        if cfg.optimizer == "adamw":
            self.opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        elif cfg.optimizer == "sgd":
            self.opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
        else:
            raise ConfigError(f"unknown --optimizer {cfg.optimizer!r}: use adamw or sgd")

    def _loader(self) -> None:
        """Seeded distributed sampling, the loader, and the step budget."""
        cfg = self.cfg
        per_rank = max(1, cfg.batch_size // self.world)
        base: DistributedSampler[Any] = DistributedSampler(
            self.train_ds, num_replicas=self.world, rank=self.rank,  # type: ignore[arg-type]
            shuffle=True, seed=cfg.seed, drop_last=True)
        self.sampler = SeededSampler(base, cfg.seed)
        self.loader: DataLoader[Any] = DataLoader(
            self.train_ds, batch_size=per_rank, sampler=self.sampler,  # type: ignore[arg-type]
            drop_last=True, num_workers=cfg.workers, collate_fn=_collate,
            pin_memory=self.device.type == "cuda", persistent_workers=cfg.workers > 0)
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{len(self.train_ds)} train frames give no batch of {per_rank}: "
                              "lower --batch-size or add frames")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.warmup = int(cfg.warmup_epochs * self.steps_per_epoch)
        self.meta = {"format": CKPT_FORMAT, "arch": cfg.arch,
                     "arch_options": dict(cfg.arch_options), "card": self.card.to_dict(),
                     "dataset": self.spec.to_dict(), "config": _plain(asdict(cfg)),
                     "class_weights": self.weights.tolist()}

    def _resume(self, ckpt: dict[str, Any]) -> None:
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step, self.start_epoch = int(ckpt["step"]), int(ckpt["epoch"])
        self.best, self.history = float(ckpt["best_miou"]), list(ckpt["history"])
        self.wall = ckpt["wall_time_s"]
        torch.set_rng_state(ckpt["rng"])
        self._log(f"resumed {self.last_path}: epoch {self.start_epoch}, step {self.step}, "
                  f"best mIoU {self.best:.4f}")

    # ------------------------------------------------------------------ epochs

    def _train_epoch(self, epoch: int) -> float:
        """One pass over the loader (bf16 autocast on CUDA); the mean loss over the ranks."""
        cfg, device = self.cfg, self.device
        self.model.train()
        self.sampler.set_epoch(epoch)
        use_amp = cfg.amp and device.type == "cuda"
        loss_sum, n_batches = torch.zeros((), device=device), 0
        for x, y in self.loader:
            if self.step >= self.total_steps:
                break
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(self.step, self.total_steps, self.warmup,
                                             cfg.schedule)
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = self.model(x)
            loss = self.loss_fn(logits.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach()
            n_batches += 1
            self.step += 1
        train_loss = float(loss_sum) / max(1, n_batches)
        if self.world > 1:
            t = torch.tensor([train_loss], device=device)
            dist.all_reduce(t)
            train_loss = float(t) / self.world
        return train_loss

    def _end_epoch(self, epoch: int, train_loss: float, done: bool) -> float:
        """Evaluate when due (``best.pt`` on a new best), log, write ``last.pt`` and
        metrics.json; the seconds the evaluation took."""
        cfg = self.cfg
        rec: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "train_loss": train_loss,
                               "lr": self.opt.param_groups[0]["lr"],
                               "wall_s": self.wall + time.perf_counter() - self.t0}
        t_eval = 0.0
        head = f"epoch {epoch + 1}/{cfg.epochs} step {self.step} loss {train_loss:.4f}"
        if self.main and ((epoch + 1) % cfg.eval_every == 0 or done):
            t_eval = time.perf_counter()
            s = self._evaluate(epoch, rec)
            t_eval = time.perf_counter() - t_eval
            self.eval_times.append(t_eval)
            self._log(f"{head} val mIoU {s['miou']:.4f} (best {self.best:.4f}) pixel acc "
                      f"{s['pixel_accuracy']:.4f} [{rec['wall_s']:.0f} s]")
        else:
            self._log(f"{head} lr {rec['lr']:.2e} [{rec['wall_s']:.0f} s]")
        self.history.append(rec)
        if self.main:
            save_checkpoint({**self.meta, "model": self.net.state_dict(),
                   "optimizer": self.opt.state_dict(), "epoch": epoch + 1, "step": self.step,
                   "best_miou": self.best, "history": self.history,
                   "wall_time_s": rec["wall_s"], "rng": torch.get_rng_state()}, self.last_path)
            _write_metrics(self.out, cfg, self.history, self.best)
        return t_eval

    def _evaluate(self, epoch: int, rec: dict[str, Any]) -> dict[str, Any]:
        """Val mIoU into ``rec``; ``best.pt`` when it beats the best so far."""
        spec = self.spec
        cm = evaluate(self.net, self.val_ds, self.device, spec.num_classes, spec.ignore_index,
                      amp=self.cfg.amp)
        s = metrics.summary(cm, spec.class_names)
        rec.update(val_miou=s["miou"], val_pixel_accuracy=s["pixel_accuracy"])
        if s["miou"] > self.best:
            self.best = s["miou"]
            save_checkpoint({**self.meta, "model": self.net.state_dict(), "epoch": epoch + 1,
                   "step": self.step, "val": s, "confusion": cm.tolist(),
                   "wall_time_s": rec["wall_s"]}, self.out / "best.pt")
        return s

    def _fit_time_limit(self, epoch: int) -> None:
        """Fit the schedule into the time budget early on: poly decay only bends a little."""
        cfg = self.cfg
        per_epoch, eval_s = time_limit_rates(self.epoch_times, self.eval_times)
        left = float(cfg.time_limit or 0) * 60 - (time.perf_counter() - self.t0)
        fit = epoch + 1 + epochs_that_fit(left, per_epoch, eval_s, cfg.eval_every)
        t = torch.tensor([min(cfg.epochs, fit)], dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.broadcast(t, 0)
        planned_epochs = int(t)
        self.total_steps = min(self.total_steps, planned_epochs * self.steps_per_epoch)
        self._log(f"time limit {cfg.time_limit} min: {per_epoch:.2f} s/epoch + "
                  f"{eval_s:.2f} s/eval -> {planned_epochs} epochs")

    def _result(self) -> dict[str, Any]:
        result = _finish(self.out, self.spec.class_names) if self.main else {}
        # Per-tensor parameter sums: lets callers (DDP tests) check that replicas agree.
        result["param_sums"] = [float(p.detach().double().sum()) for p in self.net.parameters()]
        result["step"] = self.step
        if self.world > 1:
            dist.barrier()
        return result

    def _log(self, msg: str) -> None:
        """Rank 0 prints; the other ranks stay quiet."""
        if self.main:
            _log(msg)


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=list))


def _write_metrics(out: Path, cfg: TrainConfig, history: list[dict[str, Any]],
                   best: float) -> None:
    doc = {"config": _plain(asdict(cfg)), "best_val_miou": best, "history": history}
    (out / "metrics.json").write_text(json.dumps(doc, indent=1) + "\n")


def _finish(out: Path, class_names: tuple[str, ...]) -> dict[str, Any]:
    """Plots + the best checkpoint's figures merged into metrics.json."""
    from seg_ros.train.plots import plot_confusion, plot_curves, plot_iou_bars

    doc = json.loads((out / "metrics.json").read_text())
    plot_curves(doc["history"], out)
    if (out / "best.pt").is_file():
        best = load_checkpoint(out / "best.pt")
        doc["best"] = {"epoch": best["epoch"], **best["val"]}
        plot_confusion(np.array(best["confusion"]), class_names, out / "confusion.png")
        plot_iou_bars(best["val"]["per_class_iou"], out / "per_class_iou.png",
                      f"val IoU, epoch {best['epoch']} (mIoU {100 * best['val']['miou']:.1f} %)")
    (out / "metrics.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `seg-ros train`")
