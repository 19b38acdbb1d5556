"""pyqtgraph items and colours for the graph editor.

- :data:`EMOTION_COLOURS`: fixed colours of Ditto's eight emotions (EMOTIONS order).
- :func:`channel_colour`: the colour of a displayed channel.
- :func:`sample_frames`: the frames at which a curve is drawn (about one per pixel, plus each key
  and the instant before it, so steps and corners are exact).
- :func:`stack_weights`: emotion weights -> normalised cumulative bands.
- :class:`StackedAreaItem`: draws those bands as filled polygons in view coordinates.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF

from models.motion_space import EMOTIONS

__all__ = [
    "CURVE_PALETTE",
    "EMOTION_COLOURS",
    "StackedAreaItem",
    "channel_colour",
    "sample_frames",
    "stack_weights",
]

# Ditto's order: angry, disgust, fear, happy, neutral, sad, surprise, contempt.
EMOTION_COLOURS: dict[str, QColor] = {
    f"emotion_{e}": QColor(c)
    for e, c in zip(
        EMOTIONS,
        ("#e0504b", "#7fa84a", "#9b6fd0", "#f2c94c", "#9a9a9a", "#4a86d8", "#f08a3c", "#c4609f"),
        strict=True,
    )
}

CURVE_PALETTE = tuple(
    QColor(c)
    for c in (
        "#ff7b5c",  # coral
        "#5cc8ff",  # sky
        "#9be35c",  # lime
        "#ffd15c",  # amber
        "#d98cff",  # violet
        "#5cffc8",  # mint
        "#ff5ca8",  # pink
        "#a0a8ff",  # periwinkle
        "#c8a070",  # tan
        "#70e0e0",  # cyan
    )
)


def channel_colour(channel: str, index: int) -> QColor:
    """Emotion channels have fixed colours; others take palette entry ``index`` (cycled)."""
    fixed = EMOTION_COLOURS.get(channel)
    return QColor(fixed) if fixed is not None else QColor(CURVE_PALETTE[index % len(CURVE_PALETTE)])


def sample_frames(x0: float, x1: float, n: int, key_frames: np.ndarray) -> np.ndarray:
    """Sorted sample frames ``[M]`` over ``[x0, x1]``: ``n`` evenly spaced, plus every key frame
    inside and the instant just before it (a constant segment's step is then vertical and a
    linear corner sharp)."""
    n = max(int(n), 2)
    xs = np.linspace(float(x0), float(x1), n)
    k = key_frames[(key_frames >= x0) & (key_frames <= x1)].astype(np.float64)
    if k.size:
        eps = max((x1 - x0) * 1e-7, 1e-9)
        xs = np.unique(np.concatenate([xs, k, k - eps]))
    return xs


def stack_weights(weights: np.ndarray) -> np.ndarray:
    """Emotion weights ``[E, N]`` -> cumulative bands ``[E + 1, N]`` in [0, 1].

    Negative weights count as 0; each frame is normalised to sum 1 (a frame whose weights are all
    0 shows as entirely the fifth band, neutral, when E = 8; else the first band).
    """
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    total = w.sum(axis=0)  # [N]
    empty = total <= 1e-12
    if empty.any():
        w = w.copy()
        w[:, empty] = 0.0
        w[4 if w.shape[0] == len(EMOTIONS) else 0, empty] = 1.0
        total = np.where(empty, 1.0, total)
    norm = w / total
    return np.vstack([np.zeros((1, w.shape[1])), np.cumsum(norm, axis=0)])


class StackedAreaItem(pg.GraphicsObject):
    """Filled bands between consecutive rows of ``bands [B + 1, N]`` over ``xs [N]``.

    Drawn in view coordinates (the bands live in [0, 1] on the value axis), behind the curves.
    """

    def __init__(self) -> None:
        super().__init__()
        self._xs = np.zeros(0)
        self._bands = np.zeros((1, 0))
        self._colours: list[QColor] = []
        self._polys: list[QPolygonF] = []
        self._rect = QRectF()
        self.setZValue(-10)

    def set_data(self, xs: np.ndarray, bands: np.ndarray, colours: list[QColor]) -> None:
        """Replace the data. Raises ValueError on mismatched shapes."""
        xs = np.asarray(xs, dtype=np.float64)
        bands = np.asarray(bands, dtype=np.float64)
        if bands.ndim != 2 or bands.shape[1] != xs.shape[0] or len(colours) != bands.shape[0] - 1:
            raise ValueError(
                f"stacked area: bands {bands.shape} do not match {xs.shape[0]} samples and "
                f"{len(colours)} colours"
            )
        self.prepareGeometryChange()
        self._xs, self._bands, self._colours = xs, bands, list(colours)
        self._polys = []
        if xs.size >= 2:
            rx = xs[::-1]
            for b in range(bands.shape[0] - 1):
                lo, hi = bands[b], bands[b + 1]
                pts = [QPointF(x, y) for x, y in zip(xs, hi, strict=True)]
                pts += [QPointF(x, y) for x, y in zip(rx, lo[::-1], strict=True)]
                self._polys.append(QPolygonF(pts))
            self._rect = QRectF(xs[0], 0.0, xs[-1] - xs[0], 1.0)
        else:
            self._rect = QRectF()
        self.update()

    def clear(self) -> None:
        self.set_data(np.zeros(0), np.zeros((1, 0)), [])

    @property
    def num_bands(self) -> int:
        return len(self._polys)

    def boundingRect(self) -> QRectF:
        return QRectF(self._rect)

    def paint(self, p: QPainter, *args) -> None:
        p.setPen(QPen(pg.mkColor(0, 0, 0, 0), 0))
        for poly, colour in zip(self._polys, self._colours, strict=True):
            fill = QColor(colour)
            fill.setAlpha(70)
            p.setBrush(fill)
            p.drawPolygon(poly)
