"""Training loop: AdamW/SGD, poly/one-cycle LR, AMP (bf16) on CUDA, DDP via torchrun,
checkpoints (``last.pt`` every epoch, ``best.pt`` by val mIoU) and a run folder with
``metrics.json`` and PNG plots.

Checkpoints hold only tensors and plain data, so ``torch.load(weights_only=True)`` reads them.
Augmentation is seeded per (seed, epoch, sample), so a resumed run repeats exactly what an
uninterrupted one would do (bit-identical on CPU).
"""

from __future__ import annotations

import json
import math
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
from seg_ros.errors import ConfigError
from seg_ros.train.data import SegmentationDataset, find_dataset_spec, median_frequency_weights
from seg_ros.train.losses import build_loss
from seg_ros.train.models import build_model, load_imagenet, resolve_encoder_weights
from seg_ros.train.transforms import eval_transform, train_transform

CKPT_FORMAT = 1


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


# ---------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a seg_ros checkpoint safely (weights_only); bad files raise naming file and fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found: pass the best.pt / last.pt of a run")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"checkpoint {path} is corrupt or not a torch file ({type(e).__name__}): delete it "
            "and use the run's other checkpoint (best.pt / last.pt) or train again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT or "model" not in ckpt:
        raise ConfigError(f"checkpoint {path} is not a seg_ros training checkpoint (format "
                          f"{CKPT_FORMAT}): pass a best.pt / last.pt written by `seg-ros train`")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the checkpoint's architecture and load its weights (eval mode)."""
    net = build_model(ckpt["arch"], len(ckpt["card"]["class_names"]), **ckpt["arch_options"])
    net.load_state_dict(ckpt["model"], strict=True)
    return net.eval()


def _save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint


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


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """LR multiplier at ``step``: linear warm-up then poly(0.9) or cosine one-cycle decay."""
    if schedule == "onecycle":
        warmup = max(warmup, int(0.1 * total))
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "poly":
        return (1 - t) ** 0.9
    if schedule == "onecycle":
        return 0.5 * (1 + math.cos(math.pi * t)) * 0.99 + 0.01
    raise ConfigError(f"unknown --schedule {schedule!r}: use poly or onecycle")


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
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(cfg.device)
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main = rank == 0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    spec = find_dataset_spec(cfg.data)
    if spec.ignore_index is None:
        raise ConfigError(f"dataset spec {spec.source} has no ignore_index: set one (e.g. 255)")
    card = spec.card(input_size=tuple(cfg.crop))
    t_load = time.perf_counter()
    train_ds = SegmentationDataset(
        cfg.data, "train", spec,
        train_transform(cfg.crop, card.mean, card.std, spec.ignore_index,
                        base_scale=cfg.base_scale),
        limit=cfg.limit)
    val_ds = SegmentationDataset(cfg.data, "val", spec,
                                 eval_transform(card.mean, card.std, cfg.base_scale),
                                 limit=cfg.val_limit)
    weights = median_frequency_weights(*train_ds.class_pixel_counts())
    if main:
        _log(f"data: {len(train_ds)} train / {len(val_ds)} val frames from {cfg.data} "
             f"({time.perf_counter() - t_load:.1f} s); class weights "
             f"{np.round(weights, 3).tolist()}")

    net = build_model(cfg.arch, spec.num_classes, **cfg.arch_options)
    ckpt: dict[str, Any] | None = None
    last_path = out / "last.pt"
    if cfg.resume:
        if not last_path.is_file():
            raise ConfigError(f"--resume but {last_path} does not exist: drop --resume or "
                              "point --out at the run folder to continue")
        ckpt = load_checkpoint(last_path)
        if ckpt["arch"] != cfg.arch or ckpt["arch_options"] != cfg.arch_options:
            raise ConfigError(f"{last_path} holds {ckpt['arch']} {ckpt['arch_options']} but "
                              f"--arch is {cfg.arch} {cfg.arch_options}: use the same --arch")
        net.load_state_dict(ckpt["model"])
    else:
        wpath = resolve_encoder_weights(cfg.encoder_weights)
        if wpath is not None:
            n = load_imagenet(net.encoder, wpath)
            if main:
                _log(f"encoder: loaded {n} ImageNet tensors from {wpath} (all keys matched)")
    net.to(device).to(memory_format=torch.channels_last)
    model: nn.Module = net
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)

    loss_fn = build_loss(cfg.loss, spec.ignore_index, torch.from_numpy(weights)).to(device)
    decay, no_decay = [], []
    for p in net.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    else:
        raise ConfigError(f"unknown --optimizer {cfg.optimizer!r}: use adamw or sgd")

    per_rank = max(1, cfg.batch_size // world)
    base_sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True,
                                      seed=cfg.seed, drop_last=True)
    sampler = SeededSampler(base_sampler, cfg.seed)
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers, collate_fn=_collate,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ConfigError(f"{len(train_ds)} train frames give no batch of {per_rank}: lower "
                          "--batch-size or add frames")
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    step, start_epoch, best, history, wall = 0, 0, -1.0, [], 0.0
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        step, start_epoch = int(ckpt["step"]), int(ckpt["epoch"])
        best, history, wall = float(ckpt["best_miou"]), list(ckpt["history"]), ckpt["wall_time_s"]
        torch.set_rng_state(ckpt["rng"])
        if main:
            _log(f"resumed {last_path}: epoch {start_epoch}, step {step}, best mIoU {best:.4f}")

    use_amp = cfg.amp and device.type == "cuda"
    meta = {"format": CKPT_FORMAT, "arch": cfg.arch, "arch_options": dict(cfg.arch_options),
            "card": card.to_dict(), "dataset": spec.to_dict(), "config": _plain(asdict(cfg)),
            "class_weights": weights.tolist()}
    t0 = time.perf_counter()
    epoch = start_epoch
    # --time-limit bookkeeping: seconds of each epoch without its evaluation, and of each eval.
    # The first epoch (worker start-up, cuDNN autotuning) and the first eval (autotuning at the
    # val size: ~5x a steady one) are not representative; the old estimate counted both into
    # "s/epoch" (3.5 s where steady epochs took ~1.7 s) and cut 240 epochs to 126 where ~210
    # fitted.
    epoch_times: list[float] = []
    eval_times: list[float] = []
    fit_epoch = start_epoch + max(5, 2 * cfg.eval_every if cfg.eval_every <= 10 else 5)
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total_steps:
            break
        t_epoch = time.perf_counter()
        model.train()
        sampler.set_epoch(epoch)
        loss_sum, n_batches = torch.zeros((), device=device), 0
        for x, y in loader:
            if step >= total_steps:
                break
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(step, total_steps, warmup, cfg.schedule)
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            n_batches += 1
            step += 1
        train_loss = float(loss_sum) / max(1, n_batches)
        if world > 1:
            t = torch.tensor([train_loss], device=device)
            dist.all_reduce(t)
            train_loss = float(t) / world
        done = epoch + 1 >= cfg.epochs or step >= total_steps
        rec: dict[str, Any] = {"epoch": epoch + 1, "step": step, "train_loss": train_loss,
                               "lr": opt.param_groups[0]["lr"],
                               "wall_s": wall + time.perf_counter() - t0}
        t_eval = 0.0
        if main and ((epoch + 1) % cfg.eval_every == 0 or done):
            t_eval = time.perf_counter()
            cm = evaluate(net, val_ds, device, spec.num_classes, spec.ignore_index, amp=cfg.amp)
            t_eval = time.perf_counter() - t_eval
            eval_times.append(t_eval)
            s = metrics.summary(cm, spec.class_names)
            rec.update(val_miou=s["miou"], val_pixel_accuracy=s["pixel_accuracy"])
            if s["miou"] > best:
                best = s["miou"]
                _save({**meta, "model": net.state_dict(), "epoch": epoch + 1, "step": step,
                       "val": s, "confusion": cm.tolist(), "wall_time_s": rec["wall_s"]},
                      out / "best.pt")
            _log(f"epoch {epoch + 1}/{cfg.epochs} step {step} loss {train_loss:.4f} "
                 f"val mIoU {s['miou']:.4f} (best {best:.4f}) pixel acc "
                 f"{s['pixel_accuracy']:.4f} [{rec['wall_s']:.0f} s]")
        elif main:
            _log(f"epoch {epoch + 1}/{cfg.epochs} step {step} loss {train_loss:.4f} "
                 f"lr {rec['lr']:.2e} [{rec['wall_s']:.0f} s]")
        history.append(rec)
        if main:
            _save({**meta, "model": net.state_dict(), "optimizer": opt.state_dict(),
                   "epoch": epoch + 1, "step": step, "best_miou": best, "history": history,
                   "wall_time_s": rec["wall_s"], "rng": torch.get_rng_state()}, last_path)
            _write_metrics(out, cfg, history, best)
        epoch_times.append(time.perf_counter() - t_epoch - t_eval)
        if cfg.time_limit and epoch + 1 == fit_epoch and not done:
            # Fit the schedule into the time budget early on: poly decay only bends a little.
            per_epoch, eval_s = time_limit_rates(epoch_times, eval_times)
            left = cfg.time_limit * 60 - (time.perf_counter() - t0)
            fit = epoch + 1 + epochs_that_fit(left, per_epoch, eval_s, cfg.eval_every)
            t = torch.tensor([min(cfg.epochs, fit)], dtype=torch.float64, device=device)
            if world > 1:
                dist.broadcast(t, 0)
            planned_epochs = int(t)
            total_steps = min(total_steps, planned_epochs * steps_per_epoch)
            if main:
                _log(f"time limit {cfg.time_limit} min: {per_epoch:.2f} s/epoch + "
                     f"{eval_s:.2f} s/eval -> {planned_epochs} epochs")
        if world > 1:
            dist.barrier()
        if cfg.stop_epoch is not None and epoch + 1 >= cfg.stop_epoch:
            break
    result = _finish(out, spec.class_names) if main else {}
    # Per-tensor parameter sums: lets callers (DDP tests) check that replicas agree.
    result["param_sums"] = [float(p.detach().double().sum()) for p in net.parameters()]
    result["step"] = step
    if world > 1:
        dist.barrier()
    return result


def time_limit_rates(epoch_times: list[float], eval_times: list[float]) -> tuple[float, float]:
    """(s per epoch without eval, s per eval) for --time-limit, skipping the first of each
    (start-up and autotuning) whenever a later one exists."""
    ep = epoch_times[1:] or epoch_times
    ev = eval_times[1:] or eval_times
    # Means, not medians: slow outliers (checkpoint writes, loader hiccups) cost real time.
    return (float(np.mean(ep)) if ep else 0.0), (float(np.mean(ev)) if ev else 0.0)


def epochs_that_fit(seconds: float, per_epoch: float, eval_s: float, eval_every: int) -> int:
    """Whole epochs (with an eval every ``eval_every`` of them) that fit into ``seconds``,
    with 5 % to spare (a 7.5 min budget once measured 1.83 s/epoch early and took 1.99 later)."""
    per = 1.05 * (per_epoch + eval_s / max(1, eval_every))
    return max(0, int(seconds / per)) if per > 0 else 1 << 30


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
