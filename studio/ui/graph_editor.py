"""The graph editor: animation curves of the selected channels, with editable keys and handles.

A pyqtgraph PlotWidget. Curves are sampled from the document's Curve (vectorised) over the
visible frames at about one sample per pixel plus each key, so bezier shapes, steps and corners
are exact at any zoom. The emotion channels are also drawn as a stacked area of the eight weights
(normalised per frame, fixed colours) behind their curves.

Mouse (all edits preview in the widget and push ONE edit on release):
- left-click a key: select it (Shift: toggle); left-drag a key: move the selected keys of the
  shown curves (frames snap to whole frames, values are free; Shift: lock to the main axis);
- left-drag a tangent handle of a selected bezier key: set that handle (the key becomes FREE,
  or stays ALIGNED);
- left-drag on empty space: box select (Shift adds, Ctrl removes); a click there clears;
- Ctrl+click: insert a key on the nearest curve at the nearest whole frame;
- right-click: key menu (interpolation, handle type, delete, frame);
- middle-drag or Alt+left-drag: pan; wheel: zoom; right-drag: zoom each axis;
- drag the blue playhead line, or left-drag on the frame axis, to scrub.
Keys: X/Delete delete, Home frame all, F or numpad '.' frame selected, Ctrl+C/Ctrl+V copy/paste,
T/L/B... (see the toolbar: constant, linear, bezier; handle modes).
"""

from __future__ import annotations

import itertools

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QColor, QKeyEvent
from PySide6.QtWidgets import QGraphicsItem, QMenu, QToolBar, QVBoxLayout, QWidget

from models.motion_space import (
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    EMOTIONS,
    JAW_OPEN_CHANNEL,
)
from studio.document import (
    Curve,
    DocumentError,
    HandleMode,
    Interpolation,
    insert_keys,
    set_handles,
)
from studio.ui import keyframe_ops as ops
from studio.ui.curve_items import (
    EMOTION_COLOURS,
    StackedAreaItem,
    channel_colour,
    sample_frames,
    stack_weights,
)
from studio.ui.timeline import channel_label

__all__ = ["DEFAULT_CHANNELS", "GraphEditorWidget"]

# Shown when no channel is selected: the jaw opener and the main lip channels.
DEFAULT_CHANNELS: tuple[str, ...] = (
    JAW_OPEN_CHANNEL,
    "exp_17_y",
    "exp_6_y",
    "exp_14_x",
    "exp_20_x",
)
EMOTION_CHANNELS = tuple(f"emotion_{e}" for e in EMOTIONS)

_uid = itertools.count(1)

BG = (40, 40, 42)
KEY_SEL = QColor(255, 166, 48)
HANDLE = QColor(220, 220, 220)
PLAYHEAD = QColor(74, 144, 226)
HIT_PX = 8.0
# The curves, keys, emotion area and axes (with their grid) keep their drawing in a pixmap at
# the view's resolution: the playhead line moves every frame while playing, and each move
# repaints the strips it leaves and enters, where stroking every antialiased curve's whole path
# again cost ~10 ms a frame (a quarter of a 25 fps frame on a 2-core machine). pyqtgraph's
# update() on new data and Qt on a zoom or pan repaint the cache.
_CACHE = QGraphicsItem.CacheMode.DeviceCoordinateCache


class _GraphViewBox(pg.ViewBox):
    """A ViewBox that lets the editor take left-button gestures (keys, handles, box select);
    everything else (middle-drag pan, right-drag zoom, wheel zoom) stays pyqtgraph's."""

    def __init__(self, editor: GraphEditorWidget) -> None:
        super().__init__(enableMenu=False)
        self._editor = editor

    def mouseDragEvent(self, ev, axis=None) -> None:
        if self._editor._drag_event(ev, axis):
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev) -> None:
        if self._editor._click_event(ev):
            return
        super().mouseClickEvent(ev)


class _PassiveScatter(pg.ScatterPlotItem):
    """Markers that leave clicks to the ViewBox (which does hit-testing for keys/handles)."""

    def mouseClickEvent(self, ev) -> None:
        ev.ignore()


class _ShownCurve:
    """The pyqtgraph items of one displayed channel."""

    def __init__(self, channel: str, colour: QColor, width: float) -> None:
        self.channel = channel
        self.colour = colour
        self.line = pg.PlotCurveItem(pen=pg.mkPen(colour, width=width), antialias=True)
        self.keys = _PassiveScatter(size=9, symbol="o", pxMode=True, antialias=True)
        self.keys.setZValue(10)
        self.line.setZValue(5)
        self.line.setCacheMode(_CACHE)
        self.keys.setCacheMode(_CACHE)


class GraphEditorWidget(QWidget):
    """Graph editor for ``controller`` (a StudioController). See the module docstring."""

    def __init__(self, controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._c = controller
        self._shown: dict[str, _ShownCurve] = {}
        self._preview: dict[str, Curve] = {}  # channel -> curve shown instead while dragging
        self._drag: dict | None = None
        self._syncing = False
        self._handles: list[tuple[str, int, str, float, float]] = []  # ch, frame, side, x, y
        self._stale = False  # curves changed while tabbed away: refresh when shown
        self._playhead_stale = False  # the frame changed while tabbed away: move it when shown

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.toolbar = QToolBar(self)
        self.toolbar.setIconSize(self.toolbar.iconSize() * 0.75)
        lay.addWidget(self.toolbar)
        self._vb = _GraphViewBox(self)
        self.plot = pg.PlotWidget(viewBox=self._vb, background=BG)
        lay.addWidget(self.plot, 1)
        self.plot.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.plot.installEventFilter(self)
        pi = self.plot.getPlotItem()
        # pyqtgraph creates its "Plot Options" menu without a parent, so it would outlive this
        # widget; parenting it ties its lifetime to ours (it stays a popup window).
        pi.ctrlMenu.setParent(self, pi.ctrlMenu.windowFlags())
        pi.showGrid(x=True, y=True, alpha=0.12)
        pi.setLabel("bottom", "frame")
        pi.hideButtons()
        self.legend = pi.addLegend(offset=(-10, 10), labelTextColor=(220, 220, 220))
        self.legend.setBrush(pg.mkBrush(30, 30, 32, 200))

        self._area = StackedAreaItem()
        self._vb.addItem(self._area)
        self._handle_lines = pg.PlotCurveItem(
            pen=pg.mkPen(HANDLE, width=1), connect="pairs", antialias=True
        )
        self._handle_lines.setZValue(8)
        self._handle_points = _PassiveScatter(
            size=7, symbol="o", pen=pg.mkPen(30, 30, 30), brush=pg.mkBrush(HANDLE)
        )
        self._handle_points.setZValue(9)
        self._vb.addItem(self._handle_lines)
        self._vb.addItem(self._handle_points)
        for item in (self._area, self._handle_lines, self._handle_points):
            item.setCacheMode(_CACHE)
        for name in ("left", "bottom", "right", "top"):
            pi.getAxis(name).setCacheMode(_CACHE)
        self._playhead = pg.InfiniteLine(
            pos=controller.frame,
            angle=90,
            movable=True,
            pen=pg.mkPen(PLAYHEAD, width=2),
            hoverPen=pg.mkPen(PLAYHEAD.lighter(140), width=3),
        )
        self._playhead.setZValue(20)
        self._vb.addItem(self._playhead, ignoreBounds=True)
        self._playhead.sigDragged.connect(self._on_playhead_dragged)

        self._build_toolbar()
        self._vb.sigXRangeChanged.connect(self._on_range_changed)
        self._vb.sigResized.connect(self._on_range_changed)

        c = controller
        c.projectReplaced.connect(self._on_project_replaced)
        c.documentChanged.connect(self._on_document_changed)
        c.frameChanged.connect(self._on_frame_changed)
        c.keySelectionChanged.connect(self._on_key_selection)
        # Frame All (Home) from the main window's View menu.
        c.viewAllRequested.connect(self.frame_all)
        c.channelSelectionChanged.connect(self._rebuild)
        self._rebuild()
        self.frame_all()

    # =========================================================================== toolbar
    def _build_toolbar(self) -> None:
        tb = self.toolbar
        self._interp_actions: dict[Interpolation, QAction] = {}
        for it, tip in (
            (Interpolation.CONSTANT, "Constant: hold the value until the next key"),
            (Interpolation.LINEAR, "Linear: straight line to the next key"),
            (Interpolation.BEZIER, "Bezier: smooth curve with tangent handles"),
        ):
            a = tb.addAction(it.name.capitalize(), lambda it=it: self.set_interpolation(it))
            a.setToolTip(tip + " (selected keys)")
            self._interp_actions[it] = a
        tb.addSeparator()
        self._mode_actions: dict[HandleMode, QAction] = {}
        for mode, text in (
            (HandleMode.AUTO_CLAMPED, "Auto"),
            (HandleMode.VECTOR, "Vector"),
            (HandleMode.ALIGNED, "Aligned"),
            (HandleMode.FREE, "Free"),
        ):
            a = tb.addAction(text, lambda m=mode: self.set_handle_mode(m))
            a.setToolTip(f"Handle type: {mode.name.lower().replace('_', ' ')} (selected keys)")
            self._mode_actions[mode] = a
        tb.addSeparator()
        tb.addAction("Frame all", self.frame_all).setToolTip("Frame all curves (Home)")
        tb.addAction("Frame selected", self.frame_selected).setToolTip(
            "Frame the selected keys (F, numpad .)"
        )
        tb.addSeparator()
        self._stack_action = tb.addAction("Emotion mix")
        self._stack_action.setCheckable(True)
        self._stack_action.setChecked(True)
        self._stack_action.setToolTip(
            "Show the emotion weights as a stacked area, normalised per frame"
        )
        self._stack_action.toggled.connect(lambda _: self._refresh_area())

    # ======================================================================== channels
    @property
    def channels(self) -> tuple[str, ...]:
        """The channels shown: the controller's selection, or DEFAULT_CHANNELS."""
        sel = [ch for ch in self._c.selected_channels if ch in CHANNEL_INDEX]
        return tuple(sel) if sel else DEFAULT_CHANNELS

    def _curve(self, channel: str) -> Curve:
        pre = self._preview.get(channel)
        return pre if pre is not None else self._c.project.active_take.curve(channel)

    def _rebuild(self) -> None:
        """Recreate the items for the current channel set."""
        for sc in self._shown.values():
            self._vb.removeItem(sc.line)
            self._vb.removeItem(sc.keys)
        self.legend.clear()
        self._shown = {}
        self._preview = {}
        chans = self.channels
        index = 0
        for ch in chans:
            colour = channel_colour(ch, index)
            if ch not in EMOTION_COLOURS:
                index += 1
            sc = _ShownCurve(ch, colour, 2.0 if len(chans) <= 6 else 1.5)
            self._vb.addItem(sc.line)
            self._vb.addItem(sc.keys)
            self.legend.addItem(sc.line, channel_label(ch))
            self._shown[ch] = sc
        self._refresh()

    def _refresh(self, channels: set[str] | None = None) -> None:
        """Resample curves (all, or ``channels``), keys, handles and the emotion area."""
        for ch, sc in self._shown.items():
            if channels is None or ch in channels:
                self._refresh_curve(sc)
        self._refresh_keys(channels)
        self._refresh_handles()
        if channels is None or any(ch in EMOTION_CHANNELS for ch in channels):
            self._refresh_area()

    def _sample_xs(self, key_frames: np.ndarray) -> np.ndarray:
        (x0, x1), _ = self._vb.viewRange()
        width = self._vb.width() or 600
        return sample_frames(x0, x1, int(width) + 1, key_frames)

    def _refresh_curve(self, sc: _ShownCurve) -> None:
        c = self._curve(sc.channel)
        xs = self._sample_xs(c.frames)
        ys = c.evaluate(xs, default=float(CHANNEL_DEFAULTS[CHANNEL_INDEX[sc.channel]]))
        sc.line.setData(xs, ys)

    def _refresh_keys(self, channels: set[str] | None = None) -> None:
        sel = self._c.selected_keys
        for ch, sc in self._shown.items():
            if channels is not None and ch not in channels:
                continue
            c = self._curve(ch)
            if self._drag is not None and self._drag["mode"] == "keys" and ch in self._preview:
                moved = {f + self._drag["df"] for (kc, f) in self._drag["keys"] if kc == ch}
                selected = np.isin(c.frames, np.fromiter(moved, np.int64, len(moved)))
            else:
                frames = [f for (kc, f) in sel if kc == ch]
                selected = np.isin(c.frames, np.asarray(frames, np.int64))
            dark = QColor(sc.colour).darker(220)
            brushes = [pg.mkBrush(KEY_SEL) if s else pg.mkBrush(dark) for s in selected]
            pens = [pg.mkPen("w" if s else sc.colour, width=1.5) for s in selected]
            sc.keys.setData(x=c.frames.astype(np.float64), y=c.values, brush=brushes, pen=pens)

    def _refresh_handles(self) -> None:
        """Handles of the selected bezier keys of the shown curves."""
        sel = self._c.selected_keys
        if self._drag is not None and self._drag["mode"] == "keys":
            df = self._drag["df"]
            sel = (sel - self._drag["keys"]) | {(ch, f + df) for ch, f in self._drag["keys"]}
        handles: list[tuple[str, int, str, float, float]] = []
        segs: list[float] = []
        for ch, f in sel:
            if ch not in self._shown:
                continue
            c = self._curve(ch)
            i = c.index_of(f)
            if i is None:
                continue
            kx, ky = float(c.frames[i]), float(c.values[i])
            if i > 0 and c.interp[i - 1] == Interpolation.BEZIER:
                hx, hy = kx + c.left[i, 0], ky + c.left[i, 1]
                handles.append((ch, int(f), "left", hx, hy))
                segs += [kx, ky, hx, hy]
            if i < len(c) - 1 and c.interp[i] == Interpolation.BEZIER:
                hx, hy = kx + c.right[i, 0], ky + c.right[i, 1]
                handles.append((ch, int(f), "right", hx, hy))
                segs += [kx, ky, hx, hy]
        self._handles = handles
        if handles:
            a = np.asarray(segs).reshape(-1, 2)
            self._handle_lines.setData(a[:, 0], a[:, 1])
            self._handle_points.setData(x=[h[3] for h in handles], y=[h[4] for h in handles])
        else:
            self._handle_lines.setData([], [])
            self._handle_points.setData(x=[], y=[])

    def _refresh_area(self) -> None:
        show = self._stack_action.isChecked() and any(ch in EMOTION_CHANNELS for ch in self._shown)
        if not show:
            self._area.clear()
            self._area.setVisible(False)
            return
        curves = [self._curve(ch) for ch in EMOTION_CHANNELS]
        keys = np.concatenate([c.frames for c in curves])
        xs = self._sample_xs(np.unique(keys))
        weights = np.stack(
            [
                c.evaluate(xs, default=float(CHANNEL_DEFAULTS[CHANNEL_INDEX[ch]]))
                for c, ch in zip(curves, EMOTION_CHANNELS, strict=True)
            ]
        )  # [8, N]
        self._area.set_data(
            xs, stack_weights(weights), [EMOTION_COLOURS[ch] for ch in EMOTION_CHANNELS]
        )
        self._area.setVisible(True)

    @property
    def emotion_area(self) -> StackedAreaItem:
        """The stacked emotion area item (empty unless an emotion channel is shown)."""
        return self._area

    # ======================================================================== listeners
    def _on_range_changed(self, *args) -> None:
        if self._shown:
            for sc in self._shown.values():
                self._refresh_curve(sc)
            self._refresh_area()

    def _on_project_replaced(self) -> None:
        self._drag = None
        self._rebuild()
        self.frame_all()
        self._on_frame_changed(self._c.frame)

    def _tabbed_away(self) -> bool:
        """Out of sight inside a shown window (another dock tab is raised: Qt keeps a tabbed
        dock "visible" with an empty visible region): redrawing the key scatter plots then
        only costs time (~0.1 s per refresh of a generated take)."""
        window = self.window()
        return window is not self and window.isVisible() and self.visibleRegion().isEmpty()

    def paintEvent(self, event) -> None:
        # Painted again when its tab is raised: catch up with the edits made meanwhile.
        if self._stale:
            self._stale = False
            self._refresh()
        if self._playhead_stale:
            self._on_frame_changed(self._c.frame)
        super().paintEvent(event)

    def _on_document_changed(self, kind: str, detail: dict) -> None:
        if kind in ("curves", "takes") and self._tabbed_away():
            self._stale = True
            return
        if kind == "curves":
            if detail.get("take_id") != self._c.project.active_take_id:
                return
            changed = set(detail.get("channels", ())) & set(self._shown)
            if changed:
                self._refresh(changed)
        elif kind == "takes":
            self._refresh()

    def _on_frame_changed(self, frame: int) -> None:
        # Tabbed away (the default layout, behind the timeline), moving the line still costs
        # the scene's bookkeeping, ~2 ms a frame while playing: it moves when shown again.
        if self._tabbed_away():
            self._playhead_stale = True
            return
        self._playhead_stale = False
        self._syncing = True
        try:
            self._playhead.setValue(frame)
        finally:
            self._syncing = False

    def _on_key_selection(self) -> None:
        self._refresh_keys()
        self._refresh_handles()

    def _on_playhead_dragged(self, line) -> None:
        if self._syncing:
            return
        f = round(line.value())
        self._c.set_frame(f)
        self._syncing = True
        try:
            line.setValue(self._c.frame)
        finally:
            self._syncing = False

    # ==================================================================== coordinates
    def _px(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """View (frame, value) -> ViewBox-local pixels (vectorised)."""
        t = self._vb.childGroup.transform()
        return (
            t.m11() * np.asarray(x) + t.m21() * np.asarray(y) + t.m31(),
            t.m12() * np.asarray(x) + t.m22() * np.asarray(y) + t.m32(),
        )

    def view_to_widget(self, frame: float, value: float) -> QPointF:
        """Position of view point (frame, value) in ``self.plot`` viewport coordinates."""
        scene = self._vb.mapViewToScene(QPointF(frame, value))
        return self.plot.mapFromScene(scene).toPointF()

    def _hit_handle(self, pos: QPointF) -> tuple[str, int, str] | None:
        if not self._handles:
            return None
        hx = np.array([h[3] for h in self._handles])
        hy = np.array([h[4] for h in self._handles])
        px, py = self._px(hx, hy)
        d = np.hypot(px - pos.x(), py - pos.y())
        i = int(np.argmin(d))
        if d[i] > HIT_PX:
            return None
        ch, f, side, _, _ = self._handles[i]
        return ch, f, side

    def _hit_key(self, pos: QPointF) -> tuple[str, int] | None:
        best: tuple[float, str, int] | None = None
        for ch in self._shown:
            c = self._curve(ch)
            if len(c) == 0:
                continue
            px, py = self._px(c.frames.astype(np.float64), c.values)
            d = np.hypot(px - pos.x(), py - pos.y())
            i = int(np.argmin(d))
            if d[i] <= HIT_PX and (best is None or d[i] < best[0]):
                best = (float(d[i]), ch, int(c.frames[i]))
        return None if best is None else (best[1], best[2])

    def _keys_in_rect(self, rect: QRectF) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for ch in self._shown:
            c = self._curve(ch)
            px, py = self._px(c.frames.astype(np.float64), c.values)
            inside = (
                (px >= rect.left())
                & (px <= rect.right())
                & (py >= rect.top())
                & (py <= rect.bottom())
            )
            out.update((ch, int(f)) for f in c.frames[inside])
        return out

    def _shown_selection(self) -> set[tuple[str, int]]:
        return {(ch, f) for ch, f in self._c.selected_keys if ch in self._shown}

    # =========================================================================== mouse
    def _click_event(self, ev) -> bool:
        """Handle a pyqtgraph click on the ViewBox; True when consumed."""
        btn = ev.button()
        mods = ev.modifiers()
        pos = ev.pos()
        self.plot.setFocus()
        if btn == Qt.MouseButton.RightButton:
            ev.accept()
            hit = self._hit_key(pos)
            if hit is not None and hit not in self._c.selected_keys:
                self._c.select_keys({hit})
            self._context_menu(ev.screenPos().toPoint())
            return True
        if btn != Qt.MouseButton.LeftButton:
            return False
        ev.accept()
        if mods & Qt.KeyboardModifier.ControlModifier:
            self._insert_key_at(self._vb.mapToView(pos), pos)
            return True
        if self._hit_handle(pos) is not None:
            return True
        hit = self._hit_key(pos)
        if hit is not None:
            if mods & Qt.KeyboardModifier.ShiftModifier:
                sel = self._c.selected_keys
                self._c.select_keys(sel - {hit} if hit in sel else sel | {hit})
            else:
                self._c.select_keys({hit})
        elif not mods & Qt.KeyboardModifier.ShiftModifier:
            self._c.select_keys(set())
        return True

    def _drag_event(self, ev, axis) -> bool:
        """Handle a pyqtgraph drag on the ViewBox (or an axis); True when consumed."""
        btn = ev.button()
        if axis == 0 and btn == Qt.MouseButton.LeftButton:
            # Left-drag on the frame axis scrubs, as on the timeline's ruler.
            ev.accept()
            self._c.set_frame(round(self._vb.mapSceneToView(ev.scenePos()).x()))
            return True
        if axis is not None or btn != Qt.MouseButton.LeftButton:
            return False
        if ev.modifiers() & Qt.KeyboardModifier.AltModifier and self._drag is None:
            return False  # Alt+left-drag pans (pyqtgraph's PanMode)
        ev.accept()
        if ev.isStart():
            self._begin_drag(ev)
        d = self._drag
        if d is None:
            return True
        if d["mode"] == "keys":
            self._update_key_drag(ev)
        elif d["mode"] == "handle":
            self._update_handle_drag(ev)
        elif d["mode"] == "box":
            self._vb.updateScaleBox(d["press"], ev.pos())
        if ev.isFinish():
            self._finish_drag(ev)
        return True

    def _begin_drag(self, ev) -> None:
        press = ev.buttonDownPos()
        mods = ev.modifiers()
        take = self._c.project.active_take
        handle = self._hit_handle(press)
        if handle is not None:
            ch, f, side = handle
            self._drag = {"mode": "handle", "channel": ch, "frame": f, "side": side, "take": take}
            return
        hit = self._hit_key(press)
        if hit is not None:
            sel = self._c.selected_keys
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self._c.select_keys({hit}, extend=True)
            elif hit not in sel:
                self._c.select_keys({hit})
            keys = self._shown_selection()
            self._drag = {
                "mode": "keys",
                "keys": keys,
                "start": self._vb.mapToView(press),
                "press": press,
                "df": 0,
                "dv": 0.0,
                "take": take,
            }
            return
        self._drag = {"mode": "box", "press": press, "mods": mods}

    def _update_key_drag(self, ev) -> None:
        d = self._drag
        assert d is not None
        cur = self._vb.mapToView(ev.pos())
        df = round(cur.x() - d["start"].x())
        dv = cur.y() - d["start"].y()
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            # Lock to the axis the mouse moved most along (in pixels).
            delta = ev.pos() - d["press"]
            if abs(delta.x()) >= abs(delta.y()):
                dv = 0.0
            else:
                df = 0
        d["df"], d["dv"] = df, dv
        preview: dict[str, Curve] = {}
        take = d["take"]
        for ch, frames in ops.keys_by_channel(d["keys"]).items():
            try:
                preview[ch] = take.curve(ch).with_moved_keys(frames, df, dv)
            except DocumentError:
                return
        self._preview = preview
        self._refresh(set(preview))

    def _update_handle_drag(self, ev) -> None:
        d = self._drag
        assert d is not None
        ch, f, side = d["channel"], d["frame"], d["side"]
        base = d["take"].curve(ch)
        i = base.index_of(f)
        if i is None:
            return
        cur = self._vb.mapToView(ev.pos())
        dx = cur.x() - f
        dy = cur.y() - float(base.values[i])
        dx = min(dx, 0.0) if side == "left" else max(dx, 0.0)
        d["offset"] = (dx, dy)
        try:
            if side == "left":
                self._preview = {ch: base.with_handles(f, left=(dx, dy))}
            else:
                self._preview = {ch: base.with_handles(f, right=(dx, dy))}
        except DocumentError:
            return
        self._refresh({ch})

    def _finish_drag(self, ev) -> None:
        d = self._drag
        self._drag = None
        self._preview = {}
        assert d is not None
        p = self._c.project
        if d["mode"] == "box":
            self._vb.rbScaleBox.hide()
            rect = QRectF(d["press"], ev.pos()).normalized()
            keys = self._keys_in_rect(rect)
            mods = d["mods"]
            if mods & Qt.KeyboardModifier.ControlModifier:
                self._c.select_keys(self._c.selected_keys - keys)
            else:
                self._c.select_keys(keys, extend=bool(mods & Qt.KeyboardModifier.ShiftModifier))
            return
        if d["mode"] == "keys":
            df, dv = d["df"], d["dv"]
            edit = ops.move_keys_edit(p, d["keys"], df, dv, merge_key=("graph-move", next(_uid)))
            if edit is not None and self._c.push(edit):
                moved = {(ch, f + df) for ch, f in d["keys"]}
                self._c.select_keys((self._c.selected_keys - d["keys"]) | moved)
            else:
                self._refresh(set(self._shown))
        elif d["mode"] == "handle" and "offset" in d:
            side = d["side"]
            kw = {side: d["offset"]}
            try:
                edit = set_handles(
                    p, d["channel"], d["frame"], merge_key=("graph-handle", next(_uid)), **kw
                )
            except DocumentError as exc:
                self._c.message.emit(f"Move handle: {exc}", "error")
                edit = None
            if edit is None or not self._c.push(edit):
                self._refresh({d["channel"]})
        else:
            self._refresh(set(self._shown))

    def _insert_key_at(self, view_pt: QPointF, pos: QPointF) -> bool:
        """Ctrl+click: key the nearest shown curve at the nearest whole frame."""
        f = round(view_pt.x())
        best: tuple[float, str, float] | None = None
        for ch in self._shown:
            c = self._curve(ch)
            v = float(c.evaluate([f], default=float(CHANNEL_DEFAULTS[CHANNEL_INDEX[ch]]))[0])
            _, py = self._px(np.array([view_pt.x()]), np.array([v]))
            dist = abs(float(py[0]) - pos.y())
            if best is None or dist < best[0]:
                best = (dist, ch, v)
        if best is None:
            return False
        dist, ch, v = best
        if dist > 24:
            if len(self._shown) != 1:
                self._c.message.emit("Ctrl+click on a curve to insert a key", "info")
                return False
            v = float(view_pt.y())  # one curve: key where the user clicked
        edit = insert_keys(self._c.project, {ch: ([f], [v])}, label="Insert key")
        if self._c.push(edit):
            self._c.select_keys({(ch, f)})
            return True
        return False

    # ========================================================================= actions
    def set_interpolation(self, interp: Interpolation) -> bool:
        """Set the interpolation of the selected keys of the shown curves (one undo step)."""
        edit = ops.set_interpolation_edit(self._c.project, self._shown_selection(), interp)
        return edit is not None and self._c.push(edit)

    def set_handle_mode(self, mode: HandleMode) -> bool:
        """Set the handle type of the selected keys of the shown curves (one undo step)."""
        edit = ops.set_handle_mode_edit(self._c.project, self._shown_selection(), mode)
        return edit is not None and self._c.push(edit)

    def delete_selected_keys(self) -> bool:
        """Delete the selected keys of the shown curves (one undo step)."""
        keys = self._shown_selection()
        edit = ops.delete_keys_edit(self._c.project, keys)
        if edit is None or not self._c.push(edit):
            return False
        self._c.select_keys(self._c.selected_keys - keys)
        return True

    def copy_selected_keys(self) -> int:
        clip = ops.copy_keys(self._c.project.active_take, self._shown_selection())
        if clip is None:
            return 0
        ops.set_key_clipboard(clip)
        return clip.num_keys

    def paste_keys(self) -> bool:
        clip = ops.key_clipboard()
        made = None if clip is None else ops.paste_keys_edit(self._c.project, clip, self._c.frame)
        if made is None or not self._c.push(made[0]):
            return False
        self._c.select_keys(made[1])
        return True

    def _bounds(self, keys: set[tuple[str, int]] | None) -> tuple[float, float, float, float]:
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for ch in self._shown:
            c = self._curve(ch)
            if keys is None:
                xs.append(c.frames.astype(np.float64))
                ys.append(c.values)
                if len(c) == 0:
                    ys.append(np.array([CHANNEL_DEFAULTS[CHANNEL_INDEX[ch]]]))
            else:
                fr = np.array([f for kc, f in keys if kc == ch], np.int64)
                m = np.isin(c.frames, fr)
                xs.append(c.frames[m].astype(np.float64))
                ys.append(c.values[m])
        x = np.concatenate(xs) if xs else np.zeros(0)
        y = np.concatenate(ys) if ys else np.zeros(0)
        if keys is None:
            x = np.concatenate([x, [0.0, float(self._c.project.duration - 1)]])
            if any(ch in EMOTION_CHANNELS for ch in self._shown):
                y = np.concatenate([y, [0.0, 1.0]])
        if x.size == 0:
            return 0.0, float(self._c.project.duration - 1), -1.0, 1.0
        if y.size == 0:
            y = np.array([0.0])
        return float(x.min()), float(x.max()), float(y.min()), float(y.max())

    def _show_bounds(self, x0: float, x1: float, y0: float, y1: float) -> None:
        if x1 - x0 < 4:
            x0, x1 = x0 - 5, x1 + 5
        if y1 - y0 < 1e-6:
            pad = max(abs(y0) * 0.1, 0.05)
            y0, y1 = y0 - pad, y1 + pad
        self._vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.06)

    def frame_all(self) -> None:
        """Fit every key of the shown curves and the project duration (Home)."""
        self._show_bounds(*self._bounds(None))

    def frame_selected(self) -> None:
        """Fit the selected keys of the shown curves (F / numpad .); all when none."""
        keys = self._shown_selection()
        self._show_bounds(*self._bounds(keys if keys else None))

    def _context_menu(self, screen_pos) -> None:
        menu = QMenu(self)
        has_sel = bool(self._shown_selection())
        interp = menu.addMenu("Interpolation")
        for it in Interpolation:
            a = interp.addAction(it.name.capitalize(), lambda it=it: self.set_interpolation(it))
            a.setEnabled(has_sel)
        modes = menu.addMenu("Handle type")
        for mode in (
            HandleMode.AUTO_CLAMPED,
            HandleMode.VECTOR,
            HandleMode.ALIGNED,
            HandleMode.FREE,
        ):
            a = modes.addAction(
                mode.name.capitalize().replace("_", " "), lambda m=mode: self.set_handle_mode(m)
            )
            a.setEnabled(has_sel)
        menu.addSeparator()
        a = menu.addAction("Delete keys\tX", self.delete_selected_keys)
        a.setEnabled(has_sel)
        a = menu.addAction("Copy keys\tCtrl+C", self.copy_selected_keys)
        a.setEnabled(has_sel)
        a = menu.addAction("Paste at playhead\tCtrl+V", self.paste_keys)
        a.setEnabled(ops.key_clipboard() is not None)
        menu.addSeparator()
        menu.addAction("Frame all\tHome", self.frame_all)
        menu.addAction("Frame selected\tF", self.frame_selected)
        self._last_menu = menu
        menu.popup(screen_pos)

    def context_menu(self) -> QMenu | None:
        """The last key menu opened (for tests and automation)."""
        return getattr(self, "_last_menu", None)

    # ============================================================================ keys
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.plot and event.type() == QEvent.Type.KeyPress:
            return self._handle_key(event)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self._handle_key(event):
            super().keyPressEvent(event)

    def _handle_key(self, event: QKeyEvent) -> bool:
        key = event.key()
        mods = event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if key in (Qt.Key.Key_X, Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and not ctrl:
            self.delete_selected_keys()
        elif key == Qt.Key.Key_Home:
            self.frame_all()
        elif key == Qt.Key.Key_F and not ctrl:
            self.frame_selected()
        elif key == Qt.Key.Key_Period and mods & Qt.KeyboardModifier.KeypadModifier:
            self.frame_selected()
        elif key == Qt.Key.Key_C and ctrl:
            self.copy_selected_keys()
        elif key == Qt.Key.Key_V and ctrl:
            self.paste_keys()
        elif key == Qt.Key.Key_Escape:
            self._c.select_keys(set())
        elif key == Qt.Key.Key_Left:
            self._c.set_frame(self._c.frame - 1)
        elif key == Qt.Key.Key_Right:
            self._c.set_frame(self._c.frame + 1)
        else:
            return False
        event.accept()
        return True
