"""Contact sheet of a bag evaluation: rows of frame | node labels over the frame | ground truth
(| floor grid when the node published one), with the run's figures on top and the legend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from seg_ros.bag import deserialize, image_from_msg
from seg_ros.render import Palette, legend, write_rgb_png

TILE_W, TILE_H = 320, 240
HEAD = 56
TITLE = 22


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
          color: tuple[int, int, int] = (0, 0, 0), thick: int = 1) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def _fit(img: np.ndarray, w: int = TILE_W, h: int = TILE_H,
         interp: int = cv2.INTER_AREA) -> np.ndarray:
    """Scale ``img`` into a w x h tile keeping its aspect ratio (grey margins)."""
    tile = np.full((h, w, 3), 200, np.uint8)
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    y, x = (h - nh) // 2, (w - nw) // 2
    tile[y:y + nh, x:x + nw] = small
    return tile


def grid_image(grid: Any) -> np.ndarray:
    """nav_msgs/OccupancyGrid -> RGB seen from above as the robot sees it: grid x (forward) up,
    y (left) to the left; free white, occupied black, unknown grey."""
    h, w = int(grid.info.height), int(grid.info.width)
    cells = np.asarray(grid.data, np.int8).reshape(h, w)  # [row = y index, col = x index]
    img = np.full((h, w), 128, np.uint8)
    known = cells >= 0
    img[known] = (255 - cells[known].astype(np.int32) * 255 // 100).astype(np.uint8)
    # out[r, c] = cells[h-1-c, w-1-r]: first row = farthest x, first column = largest y (left)
    return cv2.cvtColor(np.ascontiguousarray(img.T[::-1, ::-1]), cv2.COLOR_GRAY2RGB)


def grid_tile(grid: Any, w: int = TILE_W, h: int = TILE_H) -> np.ndarray:
    """:func:`grid_image` in a w x h tile, labelled: forward arrow, range marks every 5 m from
    the grid frame's origin (the robot, a red triangle), scale and frame."""
    img = grid_image(grid)
    tile = _fit(img, w, h, interp=cv2.INTER_NEAREST)
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    x0, y0 = (w - max(1, round(iw * s))) // 2, (h - max(1, round(ih * s))) // 2
    res = float(grid.info.resolution)
    ox, oy = float(grid.info.origin.position.x), float(grid.info.origin.position.y)
    # grid frame point (x, y) m -> tile pixel: row from the far end of x, column from y's top.
    def px(x: float, y: float) -> tuple[int, int]:
        return (round(x0 + (iw - (y - oy) / res) * s), round(y0 + (ih - (x - ox) / res) * s))

    grey = (90, 90, 90)
    far = ox + iw * res
    for r in range(5, int(far) + 1, 5):
        if r <= ox:
            continue
        u, v = px(r, oy + ih * res)  # left edge of the grid at x = r
        cv2.line(tile, (u - 4, v), (u, v), grey, 1)
        _text(tile, f"{r} m", (max(0, u - 34), v + 4), 0.35, grey)
    if ox <= 0 <= far and oy <= 0 <= oy + ih * res:
        u, v = px(0.0, 0.0)
        tri = np.array([[u, v - 8], [u - 5, v], [u + 5, v]], np.int32)
        cv2.fillPoly(tile, [tri], (220, 40, 40))
    cv2.arrowedLine(tile, (w - 14, 40), (w - 14, 14), grey, 1, tipLength=0.3)
    _text(tile, "fwd", (w - 40, 52), 0.35, grey)
    _text(tile, f"{res:g} m/cell, {grid.header.frame_id}", (4, h - 18), 0.35, grey)
    _text(tile, "white free, black occupied", (4, h - 6), 0.35, grey)
    return tile


def contact_sheet(data: Any, recv: dict[int, tuple[float, np.ndarray]], grids: dict[int, Any],
                  card: Any, png: str | Path, report: dict[str, Any], rows: int = 6) -> Path:
    """Write the sheet for up to ``rows`` matched frames spread over the bag."""
    palette = Palette.from_card(card)
    shown = [f for f in data.frames if f.stamp in recv and f.truth is not None]
    if len(shown) > rows:
        shown = [shown[round(i)] for i in np.linspace(0, len(shown) - 1, rows)]
    grid_stamps = sorted(grids)
    t0 = data.frames[0].stamp
    cols = ["frame", "node labels (overlay)", "ground truth"] + (
        ["floor grid (top view, forward up)"] if grids else [])
    width = TILE_W * len(cols)
    body = []
    for f in shown:
        msg = deserialize(f.raw, data.image_type, data.image_topic)
        rgb = image_from_msg(msg, data.image_type)
        pred = recv[f.stamp][1]
        truth = f.truth
        valid = truth < card.num_classes
        acc = float((pred[valid] == truth[valid]).mean()) if valid.any() else float("nan")
        tiles = [_fit(rgb), _fit(palette.overlay(np.ascontiguousarray(rgb), pred, 0.5),
                                 interp=cv2.INTER_NEAREST),
                 _fit(palette.color_mask(truth.astype(pred.dtype)), interp=cv2.INTER_NEAREST)]
        if grids:
            i = int(np.searchsorted(grid_stamps, f.stamp, side="right")) - 1
            g = grids.get(f.stamp) or (grids[grid_stamps[i]] if i >= 0 else None)
            tiles.append(grid_tile(g) if g is not None
                         else np.full((TILE_H, TILE_W, 3), 200, np.uint8))
        row = np.concatenate(tiles, axis=1)
        k = data.frames.index(f)
        row[:24, :TILE_W] //= 3  # a dark band for the caption
        _text(row, f"#{k}  t={(f.stamp - t0) / 1e9:.2f} s  pixel acc {100 * acc:.1f}%",
              (6, 17), 0.5, (255, 255, 255))
        body.append(row)

    head = np.full((HEAD + TITLE, width, 3), 255, np.uint8)
    m = report["metrics"]
    miou, pacc = m.get("miou"), m.get("pixel_accuracy")
    lat = report["latency_ms"]
    line1 = (f"{report['model_name']} on {Path(report['bag']).name}: mIoU "
             f"{'-' if miou is None else f'{100 * miou:.1f}%'}, pixel acc "
             f"{'-' if pacc is None else f'{100 * pacc:.1f}%'} over {report['scored']} frames")
    med = "-" if lat["median"] is None else f"{lat['median']:.0f}"
    p99 = "-" if lat["p99"] is None else f"{lat['p99']:.0f}"
    line2 = (f"{report['pacing']}: matched {report['matched']}/{report['frames']}, dropped "
             f"{report['dropped']}, missing {report['missing']}; latency median {med} ms, "
             f"p99 {p99} ms")
    _text(head, line1, (8, 22), 0.55, thick=1)
    _text(head, line2, (8, 46), 0.5)
    for i, c in enumerate(cols):
        _text(head, c, (i * TILE_W + 8, HEAD + 16), 0.5, (60, 60, 60))
    sheet = np.concatenate([head, *body], axis=0) if body else head
    leg = legend(card)
    if leg.shape[0] < sheet.shape[0]:
        leg = np.pad(leg, ((0, sheet.shape[0] - leg.shape[0]), (0, 0), (0, 0)),
                     constant_values=255)
    else:
        sheet = np.pad(sheet, ((0, leg.shape[0] - sheet.shape[0]), (0, 0), (0, 0)),
                       constant_values=255)
    sheet = np.concatenate([sheet, leg], axis=1)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    write_rgb_png(png, sheet)
    return png
