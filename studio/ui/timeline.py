"""The dope sheet: frame ruler and playhead, markers, the audio waveform, and keys per channel.

A custom-painted QWidget (no item per key: a take can hold tens of thousands of keys). Layout,
top to bottom: the ruler (scrub the playhead; drag the work-range brackets at its bottom edge),
the markers lane, the audio lane, then the channel rows: a Summary row, one summary row per
channel group (CHANNEL_GROUPS order, collapsible) and, when a group is expanded, its channels.
The name column on the left selects channels (what the graph editor shows).

Painting culls to the exposed rectangle and to the visible frames and rows. Everything but the
playhead and the frame readout is kept in a pixmap (rebuilt when the document, the view or the
selection changes), so a frame change while playing or scrubbing repaints two narrow strips by
copying them from it and drawing the playhead: painting the keys and the waveform of those strips
anew cost ~5 ms a frame, an eighth of a 25 fps frame on a 2-core machine.

Edits follow the house rule: a drag previews in the widget and pushes ONE edit on release; the
widget never edits in response to document events.

Mouse: left-drag on the ruler scrubs; on a key selects and moves (whole frames); on empty space
draws a selection box (Shift adds, Ctrl removes); middle-drag pans; wheel scrolls the rows
(Shift+wheel or a horizontal wheel pans time); Ctrl+wheel or pinch zooms time.
Keys: X/Delete delete, Ctrl+C/Ctrl+V copy/paste at the playhead, I keys the selected channels at
the playhead, A / Alt+A select all / none, Home frames all, Left/Right step a frame, M adds a
marker, Ctrl+Up/Ctrl+Down jump to the previous/next key.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QWheelEvent,
)
from PySide6.QtWidgets import QInputDialog, QMenu, QScrollBar, QWidget

from models.motion_space import CHANNEL_GROUPS, KEYPOINTS
from studio.document import AddMarker, CompoundEdit, Marker, RemoveMarker, SetSettings
from studio.ui import keyframe_ops as ops
from studio.ui.waveform import AudioPeaks

__all__ = ["TimelineWidget", "channel_label"]

_uid = itertools.count(1)

# ------------------------------------------------------------------------------------- style
BG = QColor(40, 40, 42)
RULER_BG = QColor(30, 30, 32)
NAME_BG = QColor(48, 48, 52)
ROW_A = QColor(44, 44, 47)
ROW_B = QColor(40, 40, 43)
GROUP_BG = QColor(56, 62, 74)
SUMMARY_BG = QColor(64, 58, 48)
ROW_SEL = QColor(70, 92, 130)
GRID = QColor(255, 255, 255, 14)
GRID_MAJOR = QColor(255, 255, 255, 28)
TEXT = QColor(215, 215, 215)
TEXT_DIM = QColor(140, 140, 145)
KEY = QColor(210, 210, 210)
KEY_GROUP = QColor(150, 175, 215)
KEY_SEL = QColor(255, 166, 48)
KEY_EDGE = QColor(15, 15, 15)
PLAYHEAD = QColor(74, 144, 226)
OUTSIDE = QColor(0, 0, 0, 70)
BEYOND = QColor(0, 0, 0, 60)
RANGE = QColor(230, 150, 60)
WAVE = QColor(110, 170, 120)
WAVE_MUTED = QColor(110, 110, 110)
MARKER = QColor(230, 200, 90)
BOX_FILL = QColor(120, 160, 230, 40)
BOX_EDGE = QColor(150, 190, 255, 180)


def channel_label(channel: str) -> str:
    """A readable label: ``exp_19_y`` -> ``jaw_open y (19)``; other channels unchanged."""
    if channel.startswith("exp_"):
        _, k, axis = channel.split("_")
        return f"{KEYPOINTS[int(k)].name} {axis} ({k})"
    if channel.startswith("emotion_"):
        return channel[len("emotion_") :]
    return channel


@dataclass
class _Row:
    kind: str  # "summary" | "group" | "channel"
    label: str
    channels: tuple[str, ...]  # the channels whose keys this row shows
    group: str  # "" for the summary row
    y: int  # top, in row-content coordinates (0 = first row, before scrolling)
    h: int


@dataclass
class _Drag:
    mode: str  # scrub | pending | keys | box | range_start | range_end | pan
    press: QPointF
    modifiers: Qt.KeyboardModifier
    keys: set[tuple[str, int]] = field(default_factory=set)  # keys under the press
    delta: int = 0  # keys: frames moved
    x0: float = 0.0  # pan: view start frame at press
    scroll: int = 0  # pan: row scroll at press
    value: int = 0  # range drags: the frame being dragged to
    current: QPointF | None = None


class TimelineWidget(QWidget):
    """Dope sheet for ``controller`` (a StudioController). See the module docstring."""

    NAME_W = 200
    RULER_H = 26
    MARKER_H = 18
    AUDIO_H = 48
    GROUP_H = 20
    ROW_H = 18
    SCROLL_W = 12
    MIN_PPF = 0.05
    MAX_PPF = 200.0
    DRAG_START_PX = 3

    # The view (zoom/pan) changed: (first visible frame, pixels per frame).
    viewChanged = Signal(float, float)

    def __init__(self, controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._c = controller
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(400, 160)
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(7.5, self._font.pointSizeF() * 0.9))
        self._fm = QFontMetrics(self._font)
        self._vbar = QScrollBar(Qt.Orientation.Vertical, self)
        self._vbar.valueChanged.connect(self._on_vscroll)
        self._ppf = 6.0  # pixels per frame
        self._x0 = -2.0  # frame at the left edge of the time area
        self._scroll = 0
        self._collapsed: dict[str, bool] = dict.fromkeys(CHANNEL_GROUPS, True)
        self._show_empty = False
        self._rows: list[_Row] = []
        self._content_h = 0
        self._union: dict[str, np.ndarray] = {}  # row key -> union of key frames
        self._sel_by_ch: dict[str, np.ndarray] = {}  # channel -> sorted selected frames
        self._sel_rows: dict[str, np.ndarray] = {}  # row key -> union of those (cache)
        self._peaks: dict[str, AudioPeaks | None] = {}
        self._sprites: dict[tuple, tuple[QPixmap, float]] = {}
        self._drag: _Drag | None = None
        self._framed = False
        # Everything but the playhead and the frame readout (device pixels), and what it was
        # painted for (None: to be repainted; see _background).
        self._bg = QPixmap()
        self._bg_key: tuple | None = None
        c = controller
        c.projectReplaced.connect(self._on_project_replaced)
        c.documentChanged.connect(self._on_document_changed)
        c.frameChanged.connect(self._on_frame_changed)
        c.keySelectionChanged.connect(self._on_key_selection)
        # Frame All (Home) from the main window's View menu.
        c.viewAllRequested.connect(self.frame_all)
        c.channelSelectionChanged.connect(self._invalidate)
        self._last_frame = c.frame
        self._rebuild_rows()
        self._on_key_selection()

    # ============================================================================ geometry
    @property
    def rows_top(self) -> int:
        return self.RULER_H + self.MARKER_H + self.AUDIO_H

    def _time_right(self) -> int:
        return self.width() - (self.SCROLL_W if self._vbar.isVisible() else 0)

    def x_for_frame(self, frame: float) -> float:
        """Widget x of ``frame`` (keys and the playhead sit on these x)."""
        return self.NAME_W + (frame - self._x0) * self._ppf

    def frame_at(self, x: float) -> float:
        """Fractional frame at widget ``x``."""
        return self._x0 + (x - self.NAME_W) / self._ppf

    def row_rect(self, name: str) -> QRect:
        """Widget rectangle of the row of a channel, a group (its name) or ``"summary"``.

        Raises KeyError when no such row is shown (collapsed group, empty channel hidden).
        """
        for r in self._rows:
            if (r.kind == "channel" and r.channels[0] == name) or (
                r.kind != "channel" and (r.group or "summary") == name
            ):
                return QRect(0, self.rows_top + r.y - self._scroll, self.width(), r.h)
        raise KeyError(f"no timeline row for {name!r}")

    def view(self) -> tuple[float, float]:
        """(first visible frame, pixels per frame)."""
        return self._x0, self._ppf

    def set_view(self, first_frame: float, pixels_per_frame: float) -> None:
        """Show time from ``first_frame`` at ``pixels_per_frame`` (clamped to sane zooms)."""
        ppf = min(max(float(pixels_per_frame), self.MIN_PPF), self.MAX_PPF)
        x0 = float(first_frame)
        if (x0, ppf) != (self._x0, self._ppf):
            self._x0, self._ppf = x0, ppf
            self._invalidate()
            self.viewChanged.emit(x0, ppf)

    def zoom_at(self, x: float, factor: float) -> None:
        """Zoom time by ``factor`` keeping the frame under widget ``x`` in place."""
        f = self.frame_at(x)
        ppf = min(max(self._ppf * factor, self.MIN_PPF), self.MAX_PPF)
        self.set_view(f - (x - self.NAME_W) / ppf, ppf)

    def frame_all(self) -> None:
        """Fit the project duration and every key of the active take (Home)."""
        p = self._c.project
        lo, hi = 0, p.duration - 1
        kr = p.active_take.key_range()
        if kr is not None:
            lo, hi = min(lo, kr[0]), max(hi, kr[1])
        self.frame_range(lo, hi)

    def frame_range(self, first: float, last: float) -> None:
        """Fit frames ``first..last`` with a small margin."""
        width = max(self._time_right() - self.NAME_W, 50)
        span = max(last - first, 1)
        ppf = (width - 24) / span
        ppf = min(max(ppf, self.MIN_PPF), self.MAX_PPF)
        self.set_view(first - 12 / ppf, ppf)

    # ============================================================================== rows
    @property
    def show_empty_channels(self) -> bool:
        return self._show_empty

    def set_show_empty_channels(self, show: bool) -> None:
        """Show channels without keys too (to select and key them); default: keyed only."""
        self._show_empty = bool(show)
        self._rebuild_rows()

    def set_group_expanded(self, group: str, expanded: bool) -> None:
        """Expand or collapse a channel group. Raises KeyError for an unknown group."""
        if group not in self._collapsed:
            raise KeyError(f"unknown channel group {group!r}")
        self._collapsed[group] = not expanded
        self._rebuild_rows()

    def is_group_expanded(self, group: str) -> bool:
        return not self._collapsed[group]

    def _rebuild_rows(self) -> None:
        take = self._c.project.active_take
        rows: list[_Row] = []
        y = 0
        keyed = tuple(take.curves)
        rows.append(_Row("summary", "Summary", keyed, "", y, self.GROUP_H))
        y += self.GROUP_H
        for g, chans in CHANNEL_GROUPS.items():
            rows.append(_Row("group", g, chans, g, y, self.GROUP_H))
            y += self.GROUP_H
            if self._collapsed[g]:
                continue
            for ch in chans:
                if self._show_empty or ch in take.curves:
                    rows.append(_Row("channel", channel_label(ch), (ch,), g, y, self.ROW_H))
                    y += self.ROW_H
        self._rows = rows
        self._content_h = y
        self._union.clear()
        self._update_scrollbar()
        self._invalidate()

    def _rows_view_h(self) -> int:
        return max(self.height() - self.rows_top, 0)

    def _update_scrollbar(self) -> None:
        view_h = self._rows_view_h()
        over = max(self._content_h - view_h, 0)
        self._vbar.setVisible(over > 0)
        self._vbar.setRange(0, over)
        self._vbar.setPageStep(max(view_h, 1))
        self._vbar.setSingleStep(self.ROW_H)
        self._vbar.setGeometry(
            self.width() - self.SCROLL_W, self.rows_top, self.SCROLL_W, max(view_h, 0)
        )
        self._scroll = min(self._scroll, over)
        self._vbar.setValue(self._scroll)

    def _on_vscroll(self, value: int) -> None:
        if value != self._scroll:
            self._scroll = value
            self._invalidate()

    def _row_at(self, y: float) -> _Row | None:
        cy = y - self.rows_top + self._scroll
        if y < self.rows_top or cy < 0:
            return None
        for r in self._rows:
            if r.y <= cy < r.y + r.h:
                return r
        return None

    def _row_frames(self, row: _Row) -> np.ndarray:
        """Key frames shown in ``row``: int64 ``[K]`` sorted (union for summary rows)."""
        take = self._c.project.active_take
        if row.kind == "channel":
            c = take.curves.get(row.channels[0])
            return c.frames if c is not None else np.zeros(0, np.int64)
        key = row.group or "summary"
        hit = self._union.get(key)
        if hit is None:
            parts = [take.curves[ch].frames for ch in row.channels if ch in take.curves]
            hit = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            self._union[key] = hit
        return hit

    def _row_keys_at(self, row: _Row, frames: np.ndarray) -> set[tuple[str, int]]:
        """Every (channel, frame) key of ``row``'s channels at ``frames``."""
        take = self._c.project.active_take
        out: set[tuple[str, int]] = set()
        for ch in row.channels:
            c = take.curves.get(ch)
            if c is None:
                continue
            hit = c.frames[np.isin(c.frames, frames)]
            out.update((ch, int(f)) for f in hit)
        return out

    def _key_size(self) -> float:
        return float(min(10.0, max(6.0, self._ppf * 0.9)))

    def _keys_under(self, pos: QPointF) -> set[tuple[str, int]]:
        """Keys of the row under ``pos`` at the frame nearest to it (within a few pixels)."""
        if pos.x() < self.NAME_W:
            return set()
        row = self._row_at(pos.y())
        if row is None:
            return set()
        frames = self._row_frames(row)
        if frames.size == 0:
            return set()
        f = self.frame_at(pos.x())
        i = int(np.searchsorted(frames, f))
        cands = frames[max(i - 1, 0) : i + 1]
        best = cands[np.argmin(np.abs(cands - f))]
        if abs(self.x_for_frame(float(best)) - pos.x()) > self._key_size() / 2 + 3:
            return set()
        return self._row_keys_at(row, np.array([best]))

    # ========================================================================= listeners
    def _on_project_replaced(self) -> None:
        self._peaks.clear()
        self._drag = None
        self._rebuild_rows()
        self._on_key_selection()
        self.frame_all()

    def _on_document_changed(self, kind: str, detail: dict) -> None:
        if kind == "curves":
            if detail.get("take_id") != self._c.project.active_take_id:
                return
            take = self._c.project.active_take
            shown = {r.channels[0] for r in self._rows if r.kind == "channel"}
            keyed_now = set(take.curves)
            changed = set(detail.get("channels", ()))
            # A channel gaining its first key or losing its last one adds/removes a row.
            if not self._show_empty and any(
                (ch in keyed_now) != (ch in shown)
                for ch in changed
                if not self._collapsed.get(_group_of(ch), True)
            ):
                self._rebuild_rows()
                return
            self._rows[0] = _Row("summary", "Summary", tuple(keyed_now), "", 0, self.GROUP_H)
            self._union.pop("summary", None)
            for ch in changed:
                self._union.pop(_group_of(ch), None)
            self._invalidate()
        elif kind == "takes":
            self._rebuild_rows()
        elif kind in ("audio", "assets"):
            self._peaks.clear()
            self._invalidate()
        elif kind in ("settings", "markers"):
            self._invalidate()

    def _invalidate(self) -> None:
        """Repaint everything: what is shown changed (not just the frame)."""
        self._bg_key = None
        self.update()

    def _on_frame_changed(self, frame: int) -> None:
        # Repaint the two strips the playhead leaves and enters (and the frame readout); the
        # background pixmap stays valid. 64 px: room for the playhead's frame-number label.
        for f in (self._last_frame, frame):
            x = int(self.x_for_frame(f))
            self.update(QRect(x - 32, 0, 64, self.height()))
        self.update(QRect(0, 0, self.NAME_W, self.RULER_H))
        self._last_frame = frame

    def _on_key_selection(self) -> None:
        by: dict[str, list[int]] = {}
        for ch, f in self._c.selected_keys:
            by.setdefault(ch, []).append(int(f))
        self._sel_by_ch = {ch: np.unique(np.asarray(fs, np.int64)) for ch, fs in by.items()}
        self._sel_rows = {}
        self._invalidate()

    # ========================================================================= painting
    def resizeEvent(self, event) -> None:
        self._update_scrollbar()
        self._bg_key = None
        super().resizeEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (
            QEvent.Type.FontChange,
            QEvent.Type.PaletteChange,
            QEvent.Type.StyleChange,
        ):
            self._bg_key = None
        super().changeEvent(event)

    def showEvent(self, event) -> None:
        if not self._framed:
            self._framed = True
            self.frame_all()
        super().showEvent(event)

    def _visible_frames(self, x_lo: float, x_hi: float) -> tuple[float, float]:
        pad = self._key_size() / self._ppf + 1
        return self.frame_at(max(x_lo, self.NAME_W)) - pad, self.frame_at(x_hi) + pad

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setFont(self._font)
        d = self._drag
        if d is None or d.mode not in ("keys", "box", "range_start", "range_end"):
            # The exposed region (Qt clips the painter to it) from the background pixmap, then
            # what changes with the frame.
            p.drawPixmap(0, 0, self._background())
            self._paint_playhead(p, event.rect())
            self._paint_readout(p)
            p.end()
            return
        # A drag previews keys, a box or the work range on every mouse move: painted directly.
        # Each exposed rectangle on its own: its bounding box could be most of the widget.
        for clip in event.region():
            p.save()
            p.setClipRect(clip)
            self._paint_clip(p, clip)
            p.restore()
        p.end()

    def _background(self) -> QPixmap:
        """The widget without the playhead and the frame readout, repainted when invalidated
        (``_invalidate``, resize, style) or when the view, the document or the screen's pixel
        ratio changed since it was painted."""
        dpr = self.devicePixelRatioF()
        key = (self.width(), self.height(), dpr, self._x0, self._ppf, self._scroll,
               self._vbar.isVisible(), self._c.revision)  # fmt: skip
        if key != self._bg_key:
            size = self.size() * dpr
            if self._bg.size() != size:
                self._bg = QPixmap(size)
            self._bg.setDevicePixelRatio(dpr)
            p = QPainter(self._bg)
            p.setFont(self._font)
            self._paint_clip(p, self.rect(), overlays=False)
            p.end()
            self._bg_key = key
        return self._bg

    def _paint_clip(self, p: QPainter, clip: QRect, overlays: bool = True) -> None:
        """Paint ``clip``; ``overlays``: with the playhead, the frame readout and the box."""
        p.fillRect(clip, BG)
        right = self._time_right()
        time_rect = QRect(self.NAME_W, 0, right - self.NAME_W, self.height())
        if clip.intersects(time_rect):
            h = self.height()
            self._paint_rows(p, clip & QRect(self.NAME_W, self.rows_top, right, h))
            self._paint_ruler(p, clip & QRect(self.NAME_W, 0, right, self.RULER_H))
            self._paint_markers(p, clip & QRect(self.NAME_W, self.RULER_H, right, self.MARKER_H))
            self._paint_audio(
                p, clip & QRect(self.NAME_W, self.RULER_H + self.MARKER_H, right, self.AUDIO_H)
            )
            if overlays:
                self._paint_playhead(p, clip)
                self._paint_box(p)
        if clip.left() < self.NAME_W:
            self._paint_names(p, clip)
            if overlays:
                self._paint_readout(p)

    def _tick_step(self) -> tuple[int, int]:
        """(labelled step, minor step) in frames for the current zoom."""
        for step in (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000):
            if step * self._ppf >= 56:
                break
        minor = step
        for m in (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000):
            if m * self._ppf >= 8 and step % m == 0:
                minor = m
                break
        return step, minor

    def _paint_ruler(self, p: QPainter, clip: QRect) -> None:
        if clip.isEmpty():
            return
        p.save()
        p.setClipRect(clip)
        p.fillRect(clip, RULER_BG)
        self._paint_range_shade(p, QRect(self.NAME_W, 0, self._time_right(), self.RULER_H))
        step, minor = self._tick_step()
        f_lo, f_hi = self._visible_frames(clip.left() - 40, clip.right() + 40)
        p.setPen(QPen(TEXT_DIM, 1))
        start = math.floor(f_lo / minor) * minor
        h = self.RULER_H
        for f in range(start, math.ceil(f_hi) + 1, minor):
            x = round(self.x_for_frame(f)) + 0.5
            major = f % step == 0
            p.setPen(QPen(TEXT_DIM if major else GRID_MAJOR, 1))
            p.drawLine(QPointF(x, h - (10 if major else 5)), QPointF(x, h))
            if major:
                p.setPen(TEXT)
                p.drawText(QPointF(x + 3, 12), str(f))
        # Work-range brackets (drag them to change the range).
        start_f, end_f = self._work_range()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(RANGE)
        for f, sign in ((start_f, 1), (end_f - 1, -1)):
            x = self.x_for_frame(f)
            p.drawPolygon(QPolygonF([QPointF(x, h - 9), QPointF(x, h), QPointF(x + 7 * sign, h)]))
        p.restore()

    def _work_range(self) -> tuple[int, int]:
        d = self._drag
        s, e = self._c.project.work_range
        if d is not None and d.mode == "range_start":
            s = d.value
        elif d is not None and d.mode == "range_end":
            e = d.value
        return int(s), int(e)

    def _paint_range_shade(self, p: QPainter, rect: QRect) -> None:
        s, e = self._work_range()
        dur = self._c.project.duration
        xs, xe = self.x_for_frame(s), self.x_for_frame(e - 1)
        xd0, xd1 = self.x_for_frame(0), self.x_for_frame(dur - 1)
        top, h = rect.top(), rect.height()
        if xs > rect.left():
            p.fillRect(QRectF(rect.left(), top, xs - rect.left(), h), OUTSIDE)
        if xe < rect.right():
            p.fillRect(QRectF(xe, top, rect.right() - xe + 1, h), OUTSIDE)
        if xd0 > rect.left():
            p.fillRect(QRectF(rect.left(), top, xd0 - rect.left(), h), BEYOND)
        if xd1 < rect.right():
            p.fillRect(QRectF(xd1, top, rect.right() - xd1 + 1, h), BEYOND)

    def _paint_markers(self, p: QPainter, clip: QRect) -> None:
        if clip.isEmpty():
            return
        p.save()
        p.setClipRect(clip)
        p.fillRect(clip, ROW_B)
        top = self.RULER_H
        f_lo, f_hi = self._visible_frames(clip.left() - 200, clip.right() + 10)
        for m in self._c.project.markers:
            if not f_lo <= m.frame <= f_hi:
                continue
            x = self.x_for_frame(m.frame)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(MARKER)
            p.drawPolygon(
                QPolygonF(
                    [
                        QPointF(x - 5, top + 3),
                        QPointF(x + 5, top + 3),
                        QPointF(x + 5, top + 10),
                        QPointF(x, top + 15),
                        QPointF(x - 5, top + 10),
                    ]
                )
            )
            if m.name:
                p.setPen(TEXT)
                p.drawText(QPointF(x + 8, top + 13), m.name)
        p.restore()

    def _clip_peaks(self, clip) -> AudioPeaks | None:
        key = f"{clip.id}:{clip.asset}"
        if key not in self._peaks:
            from studio.project_ops import project_audio

            try:
                audio = project_audio(self._c.project, clip)
                self._peaks[key] = AudioPeaks(audio.samples, audio.sample_rate)
            except (ValueError, OSError):  # AudioError is a ValueError; a missing file: OSError
                self._peaks[key] = None
        return self._peaks[key]

    def _paint_audio(self, p: QPainter, clip: QRect) -> None:
        if clip.isEmpty():
            return
        p.save()
        p.setClipRect(clip)
        p.fillRect(clip, QColor(34, 38, 36))
        top = self.RULER_H + self.MARKER_H
        mid = top + self.AUDIO_H / 2
        half = self.AUDIO_H / 2 - 3
        p.setPen(QPen(GRID_MAJOR, 1))
        p.drawLine(QPointF(clip.left(), mid), QPointF(clip.right(), mid))
        fps = self._c.project.frame_rate.fps
        for ac in self._c.project.audio_clips:
            peaks = self._clip_peaks(ac)
            if peaks is None:
                p.setPen(TEXT_DIM)
                p.drawText(QPointF(self.x_for_frame(ac.offset) + 4, mid + 4), f"{ac.name}: ?")
                continue
            spp = peaks.sample_rate / fps / self._ppf  # samples per pixel
            # Columns are anchored at the clip start: panning only shifts them.
            x_clip = self.x_for_frame(ac.offset)
            c0 = math.floor(clip.left() - x_clip)
            n = clip.width() + 2
            mins, maxs = peaks.columns(c0, n, spp)
            ok = ~np.isnan(mins)
            if not ok.any():
                continue
            idx = np.flatnonzero(ok)
            xs = x_clip + c0 + idx
            gain = ac.gain
            top_y = mid - np.clip(maxs[idx] * gain, -1, 1) * half
            bot_y = mid - np.clip(mins[idx] * gain, -1, 1) * half
            # Make every column at least one pixel tall so silence still reads as audio.
            bot_y = np.maximum(bot_y, top_y + 1)
            pts = [QPointF(x, y) for x, y in zip(xs, top_y, strict=True)]
            pts += [QPointF(x, y) for x, y in zip(xs[::-1], bot_y[::-1], strict=True)]
            colour = WAVE_MUTED if ac.muted else WAVE
            p.setPen(QPen(colour, 1))
            p.setBrush(colour)
            p.drawPolygon(QPolygonF(pts))
            p.setPen(TEXT_DIM)
            p.drawText(QPointF(max(x_clip, clip.left()) + 4, top + 11), ac.name)
        if not self._c.project.audio_clips:
            p.setPen(TEXT_DIM)
            p.drawText(QPointF(self.NAME_W + 8, mid + 4), "no audio")
        p.restore()

    def _paint_rows(self, p: QPainter, clip: QRect) -> None:
        if clip.isEmpty():
            return
        p.save()
        p.setClipRect(clip)
        top = self.rows_top - self._scroll
        right = self._time_right()
        sel_ch = set(self._c.selected_channels)
        y_lo, y_hi = clip.top() - top, clip.bottom() - top
        visible = [r for r in self._rows if r.y + r.h > y_lo and r.y <= y_hi]
        for i, r in enumerate(visible):
            rect = QRect(self.NAME_W, top + r.y, right - self.NAME_W, r.h)
            if r.kind == "summary":
                bg = SUMMARY_BG
            elif r.kind == "group":
                bg = GROUP_BG
            else:
                bg = ROW_A if (r.y // self.ROW_H + i) % 2 else ROW_B
            p.fillRect(rect, bg)
            if r.kind == "channel" and r.channels[0] in sel_ch:
                p.fillRect(rect, QColor(ROW_SEL.red(), ROW_SEL.green(), ROW_SEL.blue(), 70))
        # Frame grid, work-range shade.
        step, _ = self._tick_step()
        f_lo, f_hi = self._visible_frames(clip.left(), clip.right())
        p.setPen(QPen(GRID, 1))
        for f in range(math.floor(f_lo / step) * step, math.ceil(f_hi) + 1, step):
            x = round(self.x_for_frame(f)) + 0.5
            p.drawLine(QPointF(x, clip.top()), QPointF(x, clip.bottom() + 1))
        self._paint_range_shade(p, QRect(self.NAME_W, clip.top(), right, clip.height()))
        # Keys.
        d = self._drag
        moving = d is not None and d.mode == "keys"
        delta = d.delta if moving else 0
        size = self._key_size()
        for r in visible:
            cy = top + r.y + r.h / 2
            frames = self._row_frames(r)
            if frames.size == 0:
                continue
            lo, hi = np.searchsorted(frames, [f_lo - abs(delta), f_hi + abs(delta)])
            frames = frames[lo:hi]
            if frames.size == 0:
                continue
            sel = self._selected_mask(r, frames)
            s = size if r.kind == "channel" else size + 1
            base = KEY if r.kind == "channel" else KEY_GROUP
            if moving and sel.any():
                # Ghosts where the moving keys were, then the keys at their new frames.
                self._draw_keys(p, frames[sel], cy, s, QColor(255, 166, 48, 60), KEY_EDGE)
                self._draw_keys(p, frames[~sel], cy, s, base, KEY_EDGE)
                self._draw_keys(p, frames[sel] + delta, cy, s, KEY_SEL, KEY_EDGE)
            else:
                self._draw_keys(p, frames[~sel], cy, s, base, KEY_EDGE)
                self._draw_keys(p, frames[sel], cy, s, KEY_SEL, KEY_EDGE)
        p.restore()

    def _selected_mask(self, row: _Row, frames: np.ndarray) -> np.ndarray:
        """Which of ``frames`` (sorted) hold a selected key in ``row``."""
        key = row.channels[0] if row.kind == "channel" else (row.group or "summary")
        sel = self._sel_rows.get(key)
        if sel is None:
            parts = [self._sel_by_ch[ch] for ch in row.channels if ch in self._sel_by_ch]
            sel = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            self._sel_rows[key] = sel
        if sel.size == 0:
            return np.zeros(frames.shape[0], bool)
        idx = np.minimum(np.searchsorted(sel, frames), sel.size - 1)
        return sel[idx] == frames

    def _sprite(self, size: float, fill: QColor, edge: QColor) -> tuple[QPixmap, float]:
        """A pre-rendered key diamond and the offset of its centre (drawing sprites is ~10x
        faster than rasterising an antialiased polygon per key)."""
        dpr = self.devicePixelRatioF()
        key = (round(size * 2), fill.rgba(), edge.rgba(), dpr)
        hit = self._sprites.get(key)
        if hit is None:
            side = math.ceil(size) + 3
            pm = QPixmap(round(side * dpr), round(side * dpr))
            pm.setDevicePixelRatio(dpr)
            pm.fill(Qt.GlobalColor.transparent)
            sp = QPainter(pm)
            sp.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            sp.setPen(QPen(edge, 1))
            sp.setBrush(fill)
            c, h = side / 2, size / 2
            sp.drawConvexPolygon(
                QPolygonF(
                    [QPointF(c, c - h), QPointF(c + h, c), QPointF(c, c + h), QPointF(c - h, c)]
                )
            )
            sp.end()
            hit = (pm, side / 2)
            self._sprites[key] = hit
        return hit

    def _draw_keys(
        self, p: QPainter, frames: np.ndarray, cy: float, size: float, fill: QColor, edge: QColor
    ) -> None:
        if frames.size == 0:
            return
        pm, off = self._sprite(size, fill, edge)
        # Snap to whole pixels so sprites stay crisp.
        xs = np.round(self.NAME_W + (frames - self._x0) * self._ppf - off)
        y = round(cy - off)
        for x in xs.tolist():
            p.drawPixmap(QPointF(x, y), pm)

    def _paint_playhead(self, p: QPainter, clip: QRect) -> None:
        x = self.x_for_frame(self._c.frame)
        if x < self.NAME_W - 1 or x > self._time_right() + 1:
            return
        p.save()
        p.setClipRect(
            QRect(self.NAME_W, 0, self._time_right() - self.NAME_W, self.height()),
            Qt.ClipOperation.IntersectClip,
        )
        p.setPen(QPen(PLAYHEAD, 1.5))
        p.drawLine(QPointF(x, self.RULER_H - 2), QPointF(x, self.height()))
        text = str(self._c.frame)
        w = self._fm.horizontalAdvance(text) + 10
        box = QRectF(x - w / 2, 2, w, self.RULER_H - 6)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(PLAYHEAD)
        p.drawRoundedRect(box, 4, 4)
        p.setPen(QColor(255, 255, 255))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
        p.restore()

    def _paint_box(self, p: QPainter) -> None:
        d = self._drag
        if d is None or d.mode != "box" or d.current is None:
            return
        p.save()
        p.setPen(QPen(BOX_EDGE, 1, Qt.PenStyle.DashLine))
        p.setBrush(BOX_FILL)
        p.drawRect(QRectF(d.press, d.current).normalized())
        p.restore()

    def _paint_names(self, p: QPainter, clip: QRect) -> None:
        p.save()
        p.setClipRect(QRect(0, 0, self.NAME_W, self.height()), Qt.ClipOperation.IntersectClip)
        p.fillRect(clip & QRect(0, 0, self.NAME_W, self.height()), NAME_BG)
        # Header (the frame readout on it is _paint_readout's), lane names.
        p.fillRect(QRect(0, 0, self.NAME_W, self.RULER_H), RULER_BG)
        p.setPen(TEXT_DIM)
        p.drawText(QPointF(8, self.RULER_H + 13), "Markers")
        p.drawText(QPointF(8, self.RULER_H + self.MARKER_H + self.AUDIO_H / 2 + 4), "Audio")
        # Rows.
        p.setClipRect(
            QRect(0, self.rows_top, self.NAME_W, self.height()), Qt.ClipOperation.IntersectClip
        )
        top = self.rows_top - self._scroll
        sel_ch = set(self._c.selected_channels)
        take = self._c.project.active_take
        for r in self._rows:
            y = top + r.y
            if y + r.h < max(self.rows_top, clip.top()) or y > clip.bottom():
                continue
            rect = QRect(0, y, self.NAME_W, r.h)
            if r.kind == "summary":
                p.fillRect(rect, SUMMARY_BG)
                p.setPen(TEXT)
                p.drawText(rect.adjusted(8, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, r.label)
            elif r.kind == "group":
                p.fillRect(rect, GROUP_BG)
                chans = [c for c in r.channels if c in sel_ch]
                if chans and len(chans) == len([c for c in r.channels if c in take.curves]):
                    p.fillRect(rect, QColor(ROW_SEL.red(), ROW_SEL.green(), ROW_SEL.blue(), 90))
                self._draw_triangle(p, 10, y + r.h / 2, not self._collapsed[r.group])
                n = sum(1 for c in r.channels if c in take.curves)
                p.setPen(TEXT)
                p.drawText(rect.adjusted(20, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, r.label)
                p.setPen(TEXT_DIM)
                p.drawText(
                    rect.adjusted(0, 0, -8, 0),
                    Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                    f"{n}/{len(r.channels)}",
                )
            else:
                if r.channels[0] in sel_ch:
                    p.fillRect(rect, ROW_SEL)
                p.setPen(TEXT if r.channels[0] in take.curves else TEXT_DIM)
                p.drawText(rect.adjusted(30, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, r.label)
        p.setPen(QPen(QColor(20, 20, 20), 1))
        p.setClipRect(clip)
        p.drawLine(self.NAME_W - 1, 0, self.NAME_W - 1, self.height())
        p.restore()

    def _paint_readout(self, p: QPainter) -> None:
        """The current frame and time, on the header of the name column."""
        fps = self._c.project.frame_rate.fps
        f = self._c.frame
        p.save()
        p.setClipRect(QRect(0, 0, self.NAME_W, self.RULER_H), Qt.ClipOperation.IntersectClip)
        p.setPen(TEXT)
        p.drawText(QPointF(8, 17), f"frame {f}   {f / fps:6.2f} s")
        p.restore()

    @staticmethod
    def _draw_triangle(p: QPainter, x: float, y: float, expanded: bool) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(TEXT)
        if expanded:
            pts = [QPointF(x - 4, y - 2), QPointF(x + 4, y - 2), QPointF(x, y + 3)]
        else:
            pts = [QPointF(x - 2, y - 4), QPointF(x + 3, y), QPointF(x - 2, y + 4)]
        p.drawPolygon(QPolygonF(pts))
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)

    # ============================================================================ mouse
    def _range_handle_at(self, pos: QPointF) -> str | None:
        if not (self.RULER_H - 10 <= pos.y() < self.RULER_H) or pos.x() < self.NAME_W:
            return None
        s, e = self._c.project.work_range
        ds = abs(pos.x() - self.x_for_frame(s) - 3)
        de = abs(pos.x() - self.x_for_frame(e - 1) + 3)
        if min(ds, de) > 7:
            return None
        return "range_start" if ds <= de else "range_end"

    def _marker_at(self, pos: QPointF) -> Marker | None:
        if not (self.RULER_H <= pos.y() < self.RULER_H + self.MARKER_H):
            return None
        best = None
        for m in self._c.project.markers:
            dx = abs(self.x_for_frame(m.frame) - pos.x())
            if dx <= 6 and (best is None or dx < best[0]):
                best = (dx, m)
        return best[1] if best else None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        mods = event.modifiers()
        btn = event.button()
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if btn == Qt.MouseButton.MiddleButton or (
            btn == Qt.MouseButton.LeftButton and mods & Qt.KeyboardModifier.AltModifier
        ):
            self._drag = _Drag("pan", pos, mods, x0=self._x0, scroll=self._scroll)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if btn == Qt.MouseButton.RightButton:
            self._context_menu(event)
            return
        if btn != Qt.MouseButton.LeftButton:
            return
        if pos.x() < self.NAME_W:
            self._press_name(pos, mods)
            return
        if pos.y() < self.RULER_H:
            handle = self._range_handle_at(pos)
            if handle is not None:
                s, e = self._c.project.work_range
                self._drag = _Drag(handle, pos, mods, value=s if handle == "range_start" else e)
                return
            self._drag = _Drag("scrub", pos, mods)
            self._scrub(pos.x())
            return
        if pos.y() < self.RULER_H + self.MARKER_H:
            m = self._marker_at(pos)
            if m is not None:
                self._c.set_frame(m.frame)
            return
        if pos.y() < self.rows_top:  # audio lane: scrub there too, it is natural
            self._drag = _Drag("scrub", pos, mods)
            self._scrub(pos.x())
            return
        keys = self._keys_under(pos)
        if keys:
            sel = self._c.selected_keys
            if mods & Qt.KeyboardModifier.ShiftModifier:
                if keys <= sel:
                    self._c.select_keys(sel - keys)
                    return
                self._c.select_keys(keys, extend=True)
            elif not keys <= sel:
                self._c.select_keys(keys)
            self._drag = _Drag("pending", pos, mods, keys=keys)
            return
        self._drag = _Drag("box", pos, mods, current=pos)

    def _press_name(self, pos: QPointF, mods: Qt.KeyboardModifier) -> None:
        row = self._row_at(pos.y())
        if row is None:
            return
        take = self._c.project.active_take
        if row.kind == "group" and pos.x() < 20:
            self.set_group_expanded(row.group, self._collapsed[row.group])
            return
        if row.kind == "channel":
            chans = list(row.channels)
        else:
            chans = [c for c in row.channels if c in take.curves] or list(row.channels)
        extend = mods & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier)
        if extend:
            cur = list(self._c.selected_channels)
            if all(c in cur for c in chans):
                new = [c for c in cur if c not in chans]
            else:
                new = cur + [c for c in chans if c not in cur]
            self._c.select_channels(new)
        else:
            self._c.select_channels(chans)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if pos.x() < self.NAME_W:
            row = self._row_at(pos.y())
            if row is not None and row.kind == "group":
                self.set_group_expanded(row.group, self._collapsed[row.group])
            return
        m = self._marker_at(pos)
        if m is not None:
            self._rename_marker(m)
            return
        super().mouseDoubleClickEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        d = self._drag
        if d is None:
            self._hover(pos)
            return
        if d.mode == "pan":
            self.set_view(d.x0 - (pos.x() - d.press.x()) / self._ppf, self._ppf)
            self._vbar.setValue(int(d.scroll - (pos.y() - d.press.y())))
        elif d.mode == "scrub":
            self._scrub(pos.x())
        elif d.mode in ("range_start", "range_end"):
            s, e = self._c.project.work_range
            f = round(self.frame_at(pos.x()))
            dur = self._c.project.duration
            if d.mode == "range_start":
                d.value = int(min(max(f, 0), e - 1))
            else:
                d.value = int(min(max(f + 1, s + 1), dur))
            self._invalidate()
        elif d.mode == "pending":
            if (pos - d.press).manhattanLength() >= self.DRAG_START_PX:
                d.mode = "keys"
                self.setCursor(Qt.CursorShape.SizeHorCursor)
                self._drag_keys(pos)
        elif d.mode == "keys":
            self._drag_keys(pos)
        elif d.mode == "box":
            d.current = pos
            self._invalidate()

    def _drag_keys(self, pos: QPointF) -> None:
        d = self._drag
        assert d is not None
        delta = round((pos.x() - d.press.x()) / self._ppf)
        if delta != d.delta:
            d.delta = delta
            self._invalidate()

    def _hover(self, pos: QPointF) -> None:
        if self._range_handle_at(pos) is not None:
            self.setCursor(Qt.CursorShape.SizeHorCursor)
        else:
            self.unsetCursor()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        d = self._drag
        self._drag = None
        self.unsetCursor()
        if d is None:
            return
        if d.mode == "keys":
            if d.delta:
                sel = ops.existing_keys(self._c.project.active_take, self._c.selected_keys)
                edit = ops.move_keys_edit(
                    self._c.project, sel, d.delta, merge_key=("timeline-move", next(_uid))
                )
                if edit is not None and self._c.push(edit):
                    self._c.select_keys({(ch, f + d.delta) for ch, f in sel})
            self._invalidate()
        elif d.mode == "pending":
            # A click on an already selected key (no drag): select just the clicked keys.
            if not d.modifiers & Qt.KeyboardModifier.ShiftModifier:
                self._c.select_keys(d.keys)
        elif d.mode == "box":
            self._finish_box(d, event.position())
        elif d.mode in ("range_start", "range_end"):
            s, e = self._c.project.work_range
            new = (d.value, e) if d.mode == "range_start" else (s, d.value)
            if new != (s, e):
                self._c.push(SetSettings(work_range=new, label="Change work range"))
            self._invalidate()

    def _finish_box(self, d: _Drag, end: QPointF) -> None:
        rect = QRectF(d.press, end).normalized()
        mods = d.modifiers
        if rect.width() < self.DRAG_START_PX and rect.height() < self.DRAG_START_PX:
            if not mods & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier):
                self._c.select_keys(set())
            self._invalidate()
            return
        f_lo = math.ceil(self.frame_at(max(rect.left(), self.NAME_W)) - 0.25)
        f_hi = math.floor(self.frame_at(rect.right()) + 0.25)
        keys: set[tuple[str, int]] = set()
        cy0 = rect.top() - self.rows_top + self._scroll
        cy1 = rect.bottom() - self.rows_top + self._scroll
        for r in self._rows:
            mid = r.y + r.h / 2
            if not (cy0 <= mid + r.h / 2 - 2 and cy1 >= mid - r.h / 2 + 2):
                continue
            frames = self._row_frames(r)
            in_box = frames[(frames >= f_lo) & (frames <= f_hi)]
            if in_box.size:
                keys |= self._row_keys_at(r, in_box)
        if mods & Qt.KeyboardModifier.ControlModifier:
            self._c.select_keys(self._c.selected_keys - keys)
        else:
            self._c.select_keys(keys, extend=bool(mods & Qt.KeyboardModifier.ShiftModifier))
        self._invalidate()

    def _scrub(self, x: float) -> None:
        self._c.set_frame(round(self.frame_at(x)))

    def wheelEvent(self, event: QWheelEvent) -> None:
        mods = event.modifiers()
        dy = event.angleDelta().y()
        dx = event.angleDelta().x()
        if mods & Qt.KeyboardModifier.ControlModifier:
            self.zoom_at(event.position().x(), 1.0015 ** (dy or dx))
        elif dx or mods & Qt.KeyboardModifier.ShiftModifier:
            step = dx or dy
            self.set_view(self._x0 - step / 120 * 40 / self._ppf, self._ppf)
        elif self._vbar.isVisible() and event.position().y() >= self.rows_top:
            self._vbar.setValue(self._vbar.value() - dy // 120 * 3 * self.ROW_H)
        else:
            self.set_view(self._x0 - dy / 120 * 40 / self._ppf, self._ppf)
        event.accept()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.NativeGesture:
            if event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.zoom_at(event.position().x(), 1.0 + event.value())
                return True
        return super().event(event)

    # ========================================================================== actions
    def delete_selected_keys(self) -> bool:
        """Delete the selected keys as one undo step. Returns whether anything was deleted."""
        edit = ops.delete_keys_edit(self._c.project, self._c.selected_keys)
        if edit is None or not self._c.push(edit):
            return False
        self._c.select_keys(set())
        return True

    def copy_selected_keys(self) -> int:
        """Copy the selected keys to the shared key clipboard. Returns how many."""
        clip = ops.copy_keys(self._c.project.active_take, self._c.selected_keys)
        if clip is not None:
            ops.set_key_clipboard(clip)
            self._c.message.emit(f"Copied {clip.num_keys} keys", "info")
            return clip.num_keys
        return 0

    def paste_keys(self) -> bool:
        """Paste the key clipboard with its first key at the playhead (one undo step)."""
        clip = ops.key_clipboard()
        if clip is None:
            return False
        made = ops.paste_keys_edit(self._c.project, clip, self._c.frame)
        if made is None or not self._c.push(made[0]):
            return False
        self._c.select_keys(made[1])
        return True

    def insert_keys_at_playhead(self) -> bool:
        """Key the selected channels (else the keyed channels of the take) at the playhead."""
        chans = list(self._c.selected_channels) or list(self._c.project.active_take.curves)
        edit = ops.insert_keys_at_frame_edit(self._c.project, chans, self._c.frame)
        return edit is not None and self._c.push(edit)

    def select_all_keys(self) -> None:
        take = self._c.project.active_take
        self._c.select_keys({(ch, int(f)) for ch, c in take.curves.items() for f in c.frames})

    def add_marker_at_playhead(self) -> None:
        f = self._c.frame
        self._c.push(AddMarker(Marker(f, f"F{f}")))

    def _rename_marker(self, m: Marker) -> None:
        name, ok = QInputDialog.getText(self, "Rename marker", "Name:", text=m.name)
        if ok and name != m.name:
            self._c.push(
                CompoundEdit([RemoveMarker(m), AddMarker(Marker(m.frame, name))], "Rename marker")
            )

    def jump_to_key(self, direction: int) -> None:
        """Move the playhead to the previous (-1) or next (+1) key of the take."""
        frames = self._row_frames(self._rows[0])
        f = self._c.frame
        if direction > 0:
            after = frames[frames > f]
            if after.size:
                self._c.set_frame(int(after[0]))
        else:
            before = frames[frames < f]
            if before.size:
                self._c.set_frame(int(before[-1]))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        mods = event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if key in (Qt.Key.Key_X, Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and not ctrl:
            self.delete_selected_keys()
        elif key == Qt.Key.Key_C and ctrl:
            self.copy_selected_keys()
        elif key == Qt.Key.Key_V and ctrl:
            self.paste_keys()
        elif key == Qt.Key.Key_Home:
            self.frame_all()
        elif key == Qt.Key.Key_I and not ctrl:
            self.insert_keys_at_playhead()
        elif key == Qt.Key.Key_A and mods & Qt.KeyboardModifier.AltModifier:
            self._c.select_keys(set())
        elif key == Qt.Key.Key_A and not ctrl:
            self.select_all_keys()
        elif key == Qt.Key.Key_Escape:
            self._c.select_keys(set())
        elif key == Qt.Key.Key_M and not ctrl:
            self.add_marker_at_playhead()
        elif key == Qt.Key.Key_Left:
            self._c.set_frame(self._c.frame - 1)
        elif key == Qt.Key.Key_Right:
            self._c.set_frame(self._c.frame + 1)
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and ctrl:
            self.jump_to_key(1 if key == Qt.Key.Key_Down else -1)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_at(self.x_for_frame(self._c.frame), 1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom_at(self.x_for_frame(self._c.frame), 0.8)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def _context_menu(self, event: QMouseEvent) -> None:
        pos = event.position()
        menu = QMenu(self)
        m = self._marker_at(pos)
        if m is not None:
            menu.addAction(f"Rename marker {m.name!r}…", lambda: self._rename_marker(m))
            menu.addAction(f"Delete marker {m.name!r}", lambda: self._c.push(RemoveMarker(m)))
            menu.addSeparator()
        keys = self._keys_under(pos)
        if keys and not keys <= self._c.selected_keys:
            self._c.select_keys(keys)
        has_sel = bool(self._c.selected_keys)
        a = menu.addAction("Delete keys\tX", self.delete_selected_keys)
        a.setEnabled(has_sel)
        a = menu.addAction("Copy keys\tCtrl+C", self.copy_selected_keys)
        a.setEnabled(has_sel)
        a = menu.addAction("Paste at playhead\tCtrl+V", self.paste_keys)
        a.setEnabled(ops.key_clipboard() is not None)
        menu.addAction("Insert keys at playhead\tI", self.insert_keys_at_playhead)
        interp = menu.addMenu("Interpolation")
        from studio.document import Interpolation

        for it in Interpolation:
            act = interp.addAction(
                it.name.capitalize(),
                lambda it=it: self._push(
                    ops.set_interpolation_edit(self._c.project, self._c.selected_keys, it)
                ),
            )
            act.setEnabled(has_sel)
        menu.addSeparator()
        menu.addAction("Add marker at playhead\tM", self.add_marker_at_playhead)
        menu.addAction("Frame all\tHome", self.frame_all)
        menu.addSeparator()
        show = menu.addAction("Show channels without keys")
        show.setCheckable(True)
        show.setChecked(self._show_empty)
        show.toggled.connect(self.set_show_empty_channels)
        menu.addAction("Expand all groups", lambda: self._expand_all(True))
        menu.addAction("Collapse all groups", lambda: self._expand_all(False))
        menu.popup(event.globalPosition().toPoint())

    def _expand_all(self, expanded: bool) -> None:
        for g in self._collapsed:
            self._collapsed[g] = not expanded
        self._rebuild_rows()

    def _push(self, edit) -> None:
        if edit is not None:
            self._c.push(edit)


_GROUP_OF: dict[str, str] = {ch: g for g, chans in CHANNEL_GROUPS.items() for ch in chans}


def _group_of(channel: str) -> str:
    return _GROUP_OF.get(channel, "")
