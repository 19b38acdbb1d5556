"""The studio's look: a dark, low-contrast-chrome theme (Fusion + palette + a small style sheet)
and icons painted with QPainter at any size (no image files to ship or miss).

Colours follow the conventions animators know from Blender and Maya: keyed-on-this-frame
fields are yellow, animated fields green, the playhead blue-ish, selection orange.
"""

from __future__ import annotations

import math
from functools import cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPalette, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QApplication

__all__ = ["COLORS", "apply_theme", "icon", "icon_names"]

COLORS = {
    "window": "#2b2d31",
    "panel": "#232428",
    "base": "#1c1d20",
    "alt_base": "#26272b",
    "border": "#3a3c42",
    "text": "#dcdde0",
    "text_dim": "#8e9098",
    "accent": "#4a90e2",
    "selection": "#e0892b",
    "keyed": "#c9b23a",  # key on the current frame (Blender's yellow)
    "animated": "#4f9a4f",  # has keys elsewhere (Blender's green)
    "warning": "#e5b74a",
    "error": "#e5534b",
    "ok": "#57ab5a",
    "icon": "#c8cad0",
}

_STYLE_SHEET = """
QMainWindow::separator {{ background: {border}; width: 3px; height: 3px; }}
QMainWindow::separator:hover {{ background: {accent}; }}
QDockWidget {{ color: {text}; titlebar-close-icon: none; }}
QDockWidget::title {{
    background: {panel}; padding: 4px 8px; border-bottom: 1px solid {border};
    text-align: left;
}}
QToolBar {{ background: {window}; border: none; border-bottom: 1px solid {border}; spacing: 2px;
    padding: 2px 4px; }}
QToolBar::separator {{ background: {border}; width: 1px; margin: 4px 6px; }}
QToolButton {{ border: 1px solid transparent; border-radius: 4px; padding: 3px; }}
QToolButton:hover {{ background: #3a3d44; border-color: #4a4d55; }}
QToolButton:checked {{ background: #34435a; border-color: {accent}; }}
QToolButton:pressed {{ background: #2a3444; }}
QStatusBar {{ background: {panel}; border-top: 1px solid {border}; color: {text_dim}; }}
QStatusBar::item {{ border: none; }}
QMenuBar {{ background: {window}; border-bottom: 1px solid {border}; }}
QMenuBar::item:selected {{ background: #3a3d44; }}
QMenu {{ background: {panel}; border: 1px solid {border}; padding: 4px 0; }}
QMenu::item {{ padding: 4px 28px 4px 24px; }}
QMenu::item:selected {{ background: {accent}; color: white; }}
QMenu::item:disabled {{ color: #5d6068; }}
QMenu::separator {{ height: 1px; background: {border}; margin: 4px 8px; }}
QGroupBox {{ border: 1px solid {border}; border-radius: 4px; margin-top: 14px; padding-top: 4px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; color: {text_dim}; }}
QSlider::groove:horizontal {{ height: 4px; background: #3a3c42; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: #4a6a96; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: #c8cad0; width: 10px; margin: -5px 0;
    border-radius: 5px; }}
QSlider::handle:horizontal:hover {{ background: white; }}
QDoubleSpinBox, QSpinBox, QLineEdit, QComboBox {{
    background: {base}; border: 1px solid {border}; border-radius: 3px; padding: 1px 4px;
    selection-background-color: {accent};
}}
QDoubleSpinBox[compact="true"]::up-button, QDoubleSpinBox[compact="true"]::down-button {{
    width: 0px; border: none; }}
QDoubleSpinBox[keyState="keyed"] {{ background: #4d4620; border-color: {keyed}; }}
QDoubleSpinBox[keyState="animated"] {{ background: #24402a; border-color: {animated}; }}
QListView, QTreeView, QTableView, QPlainTextEdit, QTextBrowser {{
    background: {base}; border: 1px solid {border}; alternate-background-color: {alt_base};
}}
QHeaderView::section {{ background: {panel}; border: none; border-right: 1px solid {border};
    border-bottom: 1px solid {border}; padding: 3px 6px; color: {text_dim}; }}
QProgressBar {{ background: {base}; border: 1px solid {border}; border-radius: 3px; }}
QProgressBar::chunk {{ background: {accent}; border-radius: 2px; }}
QScrollArea {{ border: none; }}
QLabel#dockMessage {{ color: {text_dim}; font-size: 13px; }}
QLabel#sectionTitle {{ color: {text_dim}; font-weight: bold; padding-top: 6px; }}
QLabel#timeDisplay {{ font-family: monospace; font-size: 13px; color: {text}; padding: 0 6px; }}
QTabBar::tab {{ background: {panel}; border: 1px solid {border}; padding: 4px 12px;
    border-bottom: none; color: {text_dim}; }}
QTabBar::tab:selected {{ background: {window}; color: {text}; }}
"""


def apply_theme(app: QApplication) -> None:
    """Fusion style, the dark palette and the style sheet, on the whole application."""
    app.setStyle("Fusion")
    c = {k: QColor(v) for k, v in COLORS.items()}
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Window, c["window"])
    pal.setColor(QPalette.ColorRole.WindowText, c["text"])
    pal.setColor(QPalette.ColorRole.Base, c["base"])
    pal.setColor(QPalette.ColorRole.AlternateBase, c["alt_base"])
    pal.setColor(QPalette.ColorRole.ToolTipBase, c["panel"])
    pal.setColor(QPalette.ColorRole.ToolTipText, c["text"])
    pal.setColor(QPalette.ColorRole.PlaceholderText, c["text_dim"])
    pal.setColor(QPalette.ColorRole.Text, c["text"])
    pal.setColor(QPalette.ColorRole.Button, QColor("#34363c"))
    pal.setColor(QPalette.ColorRole.ButtonText, c["text"])
    pal.setColor(QPalette.ColorRole.BrightText, QColor("white"))
    pal.setColor(QPalette.ColorRole.Highlight, c["accent"])
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("white"))
    pal.setColor(QPalette.ColorRole.Link, c["accent"])
    pal.setColor(QPalette.ColorRole.Light, QColor("#45484f"))
    pal.setColor(QPalette.ColorRole.Midlight, QColor("#3a3c42"))
    pal.setColor(QPalette.ColorRole.Mid, QColor("#303238"))
    pal.setColor(QPalette.ColorRole.Dark, QColor("#18191b"))
    pal.setColor(QPalette.ColorRole.Shadow, QColor("#000000"))
    dim = QColor("#6b6e76")
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, dim)
    app.setPalette(pal)
    app.setStyleSheet(_STYLE_SHEET.format(**COLORS))


# ------------------------------------------------------------------------------------ icons
def _tri(p: QPainter, pts: list[tuple[float, float]]) -> None:
    p.drawPolygon(QPolygonF([QPointF(x, y) for x, y in pts]))


def _draw(name: str, p: QPainter, s: float, color: QColor) -> None:
    """Draw icon ``name`` in a square of side ``s`` (coordinates in units of s/16)."""
    u = s / 16.0
    p.scale(u, u)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(color)
    line = QPen(color, 1.6)
    line.setCapStyle(Qt.PenCapStyle.RoundCap)
    line.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    if name == "play":
        _tri(p, [(4, 2.5), (13.5, 8), (4, 13.5)])
    elif name == "play_reverse":
        _tri(p, [(12, 2.5), (2.5, 8), (12, 13.5)])
    elif name == "pause":
        p.drawRoundedRect(QRectF(3.5, 2.5, 3.2, 11), 0.8, 0.8)
        p.drawRoundedRect(QRectF(9.3, 2.5, 3.2, 11), 0.8, 0.8)
    elif name == "stop":
        p.drawRoundedRect(QRectF(3, 3, 10, 10), 1.2, 1.2)
    elif name == "to_start":
        p.drawRect(QRectF(2.5, 3, 2, 10))
        _tri(p, [(13.5, 3), (5, 8), (13.5, 13)])
    elif name == "to_end":
        p.drawRect(QRectF(11.5, 3, 2, 10))
        _tri(p, [(2.5, 3), (11, 8), (2.5, 13)])
    elif name in ("prev_key", "next_key"):
        sign = -1 if name == "prev_key" else 1
        cx = 8 + sign * 2.5
        _tri(p, [(cx, 4), (cx + 4, 8), (cx, 12), (cx - 4, 8)])
        x0 = 8 - sign * 3.5
        _tri(p, [(x0 - sign * 1.5, 4.5), (x0 + sign * 2, 8), (x0 - sign * 1.5, 11.5)])
    elif name == "key":
        _tri(p, [(8, 2), (14, 8), (8, 14), (2, 8)])
    elif name == "key_delete":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        _tri(p, [(8, 2), (14, 8), (8, 14), (2, 8)])
        p.drawLine(QPointF(5.5, 5.5), QPointF(10.5, 10.5))
    elif name == "loop":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        path = QPainterPath()
        path.arcMoveTo(QRectF(2.5, 3.5, 11, 9), 30)
        path.arcTo(QRectF(2.5, 3.5, 11, 9), 30, 300)
        p.drawPath(path)
        p.setPen(Qt.PenStyle.NoPen)
        a = math.radians(30)
        x, y = 8 + 5.5 * math.cos(a), 8 - 4.5 * math.sin(a)
        _tri(p, [(x - 2.6, y - 2.2), (x + 1.6, y - 2.6), (x + 0.6, y + 1.6)])
    elif name == "undo" or name == "redo":
        if name == "redo":
            p.translate(16, 0)
            p.scale(-1, 1)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        path = QPainterPath(QPointF(4, 7))
        path.cubicTo(QPointF(7, 3.5), QPointF(14, 4.5), QPointF(13, 11.5))
        p.drawPath(path)
        p.setPen(Qt.PenStyle.NoPen)
        _tri(p, [(2, 4), (7.5, 5), (3.5, 9.5)])
    elif name == "new":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        p.drawPolyline(QPolygonF([QPointF(*q) for q in [(10, 2), (3.5, 2), (3.5, 14), (12.5, 14),
                                                         (12.5, 4.5), (10, 2)]]))  # fmt: skip
        p.drawLine(QPointF(8, 6.5), QPointF(8, 11.5))
        p.drawLine(QPointF(5.5, 9), QPointF(10.5, 9))
    elif name == "open":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        p.drawPolyline(QPolygonF([QPointF(*q) for q in [(2, 12.5), (2, 3.5), (6, 3.5), (7.5, 5),
                                                         (12.5, 5), (12.5, 7)]]))  # fmt: skip
        p.drawPolygon(QPolygonF([QPointF(*q) for q in [(2, 12.5), (4.5, 7), (14.5, 7),
                                                        (12, 12.5)]]))  # fmt: skip
    elif name == "save":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        p.drawRoundedRect(QRectF(2.5, 2.5, 11, 11), 1.5, 1.5)
        p.drawRect(QRectF(5, 2.5, 6, 3.5))
        p.drawRect(QRectF(4.5, 9, 7, 4.5))
    elif name == "audio":
        p.drawRect(QRectF(2, 6, 3, 4))
        _tri(p, [(5, 6), (9, 2.5), (9, 13.5), (5, 10)])
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        p.drawArc(QRectF(7, 4.5, 6, 7), -50 * 16, 100 * 16)
        p.drawArc(QRectF(6.5, 2, 9, 12), -50 * 16, 100 * 16)
    elif name == "audio_off":
        p.drawRect(QRectF(2, 6, 3, 4))
        _tri(p, [(5, 6), (9, 2.5), (9, 13.5), (5, 10)])
        p.setPen(line)
        p.drawLine(QPointF(11, 6), QPointF(15, 10))
        p.drawLine(QPointF(15, 6), QPointF(11, 10))
    elif name == "head":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        p.drawEllipse(QRectF(4, 1.8, 8, 9.5))
        p.drawArc(QRectF(1.5, 11, 13, 8), 20 * 16, 140 * 16)
    elif name == "settings":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(color, 2.2))
        for k in range(8):
            a = k * math.pi / 4
            p.drawLine(
                QPointF(8 + 4.6 * math.cos(a), 8 + 4.6 * math.sin(a)),
                QPointF(8 + 6.3 * math.cos(a), 8 + 6.3 * math.sin(a)),
            )
        p.setPen(line)
        p.drawEllipse(QPointF(8, 8), 4.2, 4.2)
        p.drawEllipse(QPointF(8, 8), 1.6, 1.6)
    elif name == "help":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        p.drawEllipse(QPointF(8, 8), 6.2, 6.2)
        path = QPainterPath(QPointF(6, 6.3))
        path.cubicTo(QPointF(6, 3.6), QPointF(10.4, 3.6), QPointF(10.2, 6.3))
        path.cubicTo(QPointF(10, 8), QPointF(8, 8), QPointF(8, 9.8))
        p.drawPath(path)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawEllipse(QPointF(8, 12), 0.9, 0.9)
    elif name == "export":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(line)
        p.drawPolyline(QPolygonF([QPointF(*q) for q in [(6, 4), (3, 4), (3, 13), (13, 13),
                                                         (13, 10)]]))  # fmt: skip
        p.drawLine(QPointF(7.5, 8.5), QPointF(13.5, 2.5))
        p.drawPolyline(QPolygonF([QPointF(9, 2.5), QPointF(13.5, 2.5), QPointF(13.5, 7)]))
    elif name == "dot":
        p.drawEllipse(QPointF(8, 8), 4, 4)
    else:
        raise KeyError(f"no icon named {name!r}")


_NAMES = (
    "play", "play_reverse", "pause", "stop", "to_start", "to_end", "prev_key", "next_key",
    "key", "key_delete", "loop", "undo", "redo", "new", "open", "save", "audio", "audio_off",
    "head", "settings", "help", "export", "dot",
)  # fmt: skip


def icon_names() -> tuple[str, ...]:
    return _NAMES


@cache
def icon(name: str, color: str | None = None) -> QIcon:
    """A painted icon (16, 24, 32 and 48 px, crisp at high DPI). Raises KeyError for unknown
    names. Needs a QGuiApplication."""
    base = QColor(color or COLORS["icon"])
    result = QIcon()
    for size in (16, 24, 32, 48):
        for mode, col in (
            (QIcon.Mode.Normal, base),
            (QIcon.Mode.Disabled, QColor("#5d6068")),
            (QIcon.Mode.Active, QColor("white")),
        ):
            pm = QPixmap(size, size)
            pm.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pm)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            try:
                _draw(name, painter, size, col)
            finally:
                painter.end()
            result.addPixmap(pm, mode)
    return result
