"""A small ISO base media file format (MP4) box parser and writer, enough to add the Spherical
Video V2 stereo box ``st3d`` to an encoded MP4 so that players (YouTube, Quest, VLC) detect 3D.

Box layout (ISO/IEC 14496-12): ``size:u32 type:4cc [largesize:u64 when size == 1] payload``;
size 0 means "to the end of the file" (top level only). Containers we descend into are listed in
CONTAINERS; ``stsd`` (FullBox + entry count) and visual sample entries (``avc1``, ``hvc1``, ...,
78 bytes of fields after the header) carry a fixed prefix before their child boxes.

``st3d`` (Spherical Video V2, https://github.com/google/spatial-media/blob/master/docs/
spherical-video-v2-rfc.md): FullBox version 0, flags 0, then ``stereo_mode:u8`` (0 mono,
1 top-bottom with the left eye on top, 2 left-right with the left eye on the left). It sits in
the video track's sample entry; we put it right after the codec configuration box (avcC/hvcC).

Inserting a box grows every ancestor (moov, trak, mdia, minf, stbl, stsd, the sample entry):
sizes are recomputed on write. When ``moov`` precedes ``mdat`` (a "fast start" file) the media
data moves by the growth, so every chunk offset (``stco``/``co64``) pointing past the start of
``moov`` is shifted by it. Only ``moov`` is held in memory; ``mdat`` is streamed.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONTAINERS",
    "ST3D_MODE_NAMES",
    "Box",
    "IsoBmffError",
    "build_st3d",
    "find_boxes",
    "insert_st3d",
    "parse_boxes",
    "read_st3d",
    "read_top_level",
    "serialize_box",
]

# Boxes whose payload is a list of boxes.
CONTAINERS = frozenset(
    {"moov", "trak", "mdia", "minf", "stbl", "dinf", "edts", "mvex", "udta", "moof", "traf",
     "sinf", "schi", "tref"}
)  # fmt: skip
VISUAL_SAMPLE_ENTRIES = frozenset({"avc1", "avc3", "hvc1", "hev1", "av01", "vp09", "mp4v"})
_VISUAL_ENTRY_PREFIX = 78  # bytes of SampleEntry + VisualSampleEntry fields before child boxes
_CONFIG_BOXES = ("avcC", "hvcC", "av1C", "vpcC", "esds")
ST3D_MODE_NAMES = {0: "mono", 1: "top-bottom", 2: "left-right"}


class IsoBmffError(ValueError):
    """The file is not an MP4 we can edit (truncated, fragmented, no video sample entry...)."""


@dataclass
class Box:
    """One box. ``prefix``: payload bytes before the child boxes (FullBox fields, sample-entry
    fields); ``children``: parsed child boxes, or None for a leaf whose payload is ``data``.
    ``offset``/``size``: where the box was in the source (size includes the header)."""

    type: str
    offset: int = 0
    size: int = 0
    data: bytes = b""
    prefix: bytes = b""
    children: list[Box] | None = None

    def child(self, kind: str) -> Box | None:
        for c in self.children or ():
            if c.type == kind:
                return c
        return None

    def payload_size(self) -> int:
        if self.children is None:
            return len(self.data)
        return len(self.prefix) + sum(b.total_size() for b in self.children)

    def total_size(self) -> int:
        n = self.payload_size() + 8
        return n + 8 if n > 0xFFFFFFFF else n


def _header(data: bytes | memoryview, pos: int, end: int) -> tuple[str, int, int]:
    """(type, total size, header size) of the box at ``pos``; raises IsoBmffError."""
    if end - pos < 8:
        raise IsoBmffError(f"truncated box header at byte {pos}")
    size, raw = struct.unpack_from(">I4s", data, pos)
    kind = raw.decode("latin-1")
    header = 8
    if size == 1:
        if end - pos < 16:
            raise IsoBmffError(f"truncated 64-bit box header at byte {pos}")
        (size,) = struct.unpack_from(">Q", data, pos + 8)
        header = 16
    elif size == 0:
        size = end - pos
    if size < header or pos + size > end:
        raise IsoBmffError(f"box {kind!r} at byte {pos} has size {size} past its parent's end")
    return kind, size, header


def parse_boxes(data: bytes, start: int = 0, end: int | None = None, base: int = 0) -> list[Box]:
    """Parse the boxes in ``data[start:end]`` recursively (containers, stsd, sample entries).

    ``base`` is added to offsets (the position of ``data`` in its file). Raises IsoBmffError.
    """
    end = len(data) if end is None else end
    out: list[Box] = []
    pos = start
    while pos < end:
        kind, size, header = _header(data, pos, end)
        p0, p1 = pos + header, pos + size
        box = Box(kind, base + pos, size)
        if kind in CONTAINERS:
            box.children = parse_boxes(data, p0, p1, base)
        elif kind == "stsd":
            if p1 - p0 < 8:
                raise IsoBmffError("truncated stsd box")
            box.prefix = bytes(data[p0 : p0 + 8])
            box.children = parse_boxes(data, p0 + 8, p1, base)
        elif kind in VISUAL_SAMPLE_ENTRIES and p1 - p0 >= _VISUAL_ENTRY_PREFIX:
            box.prefix = bytes(data[p0 : p0 + _VISUAL_ENTRY_PREFIX])
            box.children = parse_boxes(data, p0 + _VISUAL_ENTRY_PREFIX, p1, base)
        else:
            box.data = bytes(data[p0:p1])
        out.append(box)
        pos = p1
    return out


def serialize_box(box: Box) -> bytes:
    """The bytes of ``box`` with every size recomputed from its (possibly edited) contents."""
    if box.children is None:
        payload = box.data
    else:
        payload = box.prefix + b"".join(serialize_box(c) for c in box.children)
    n = len(payload) + 8
    kind = box.type.encode("latin-1")
    if n > 0xFFFFFFFF:
        return struct.pack(">I4sQ", 1, kind, n + 8) + payload
    return struct.pack(">I4s", n, kind) + payload


def find_boxes(boxes: list[Box], path: str) -> Iterator[Box]:
    """Every box at ``path`` ("moov/trak/mdia"), depth first, in file order."""
    head, _, rest = path.partition("/")
    for b in boxes:
        if b.type == head:
            if not rest:
                yield b
            elif b.children is not None:
                yield from find_boxes(b.children, rest)


def build_st3d(mode: int) -> Box:
    """An ``st3d`` box: version 0, flags 0, stereo_mode ``mode`` (0 mono, 1 TB, 2 LR)."""
    if mode not in ST3D_MODE_NAMES:
        raise ValueError(f"st3d stereo_mode must be 0, 1 or 2, got {mode!r}")
    return Box("st3d", data=struct.pack(">IB", 0, mode))


def read_top_level(path: str | os.PathLike[str]) -> list[Box]:
    """Top-level boxes of a file: ``moov`` parsed fully, other boxes (mdat...) as headers only
    (empty ``data``; their bytes stay in the file). Raises IsoBmffError / OSError."""
    path = Path(path)
    total = path.stat().st_size
    boxes: list[Box] = []
    with path.open("rb") as f:
        pos = 0
        while pos < total:
            f.seek(pos)
            head = f.read(16)
            kind, size, _ = _header(head + b"\0" * (16 - len(head)), 0, total - pos)
            box = Box(kind, pos, size)
            if kind == "moov":
                f.seek(pos)
                raw = f.read(size)
                box = parse_boxes(raw, 0, size, base=pos)[0]
            boxes.append(box)
            pos += size
    if not any(b.type == "moov" for b in boxes):
        raise IsoBmffError(f"{path}: no moov box (not an MP4, or an unfinished one)")
    return boxes


def _video_entries(moov: Box) -> list[Box]:
    entries = []
    for trak in find_boxes([moov], "moov/trak"):
        hdlr = next(find_boxes(trak.children or [], "mdia/hdlr"), None)
        if hdlr is None or hdlr.data[8:12] != b"vide":
            continue
        for stsd in find_boxes(trak.children or [], "mdia/minf/stbl/stsd"):
            entries += [e for e in stsd.children or [] if e.type in VISUAL_SAMPLE_ENTRIES]
    return entries


def _shift_chunk_offsets(moov: Box, threshold: int, delta: int) -> None:
    """Add ``delta`` to every stco/co64 offset >= ``threshold`` (data that moved)."""
    for stbl in find_boxes([moov], "moov/trak/mdia/minf/stbl"):
        for b in stbl.children or []:
            if b.type not in ("stco", "co64"):
                continue
            fmt = ">I" if b.type == "stco" else ">Q"
            width = 4 if b.type == "stco" else 8
            (count,) = struct.unpack_from(">I", b.data, 4)
            if len(b.data) < 8 + count * width:
                raise IsoBmffError(f"truncated {b.type} box")
            values = list(struct.unpack_from(f">{count}{fmt[1]}", b.data, 8))
            shifted = [v + delta if v >= threshold else v for v in values]
            if b.type == "stco" and shifted and max(shifted) > 0xFFFFFFFF:
                raise IsoBmffError("chunk offsets overflow 32 bits after the edit (needs co64)")
            b.data = b.data[:8] + struct.pack(f">{count}{fmt[1]}", *shifted)


def insert_st3d(
    src: str | os.PathLike[str], mode: int, dst: str | os.PathLike[str] | None = None
) -> None:
    """Add (or replace) ``st3d`` with ``mode`` in every video sample entry of the MP4 ``src``.

    Writes ``dst`` (default: ``src`` itself, replaced atomically through a temporary file in the
    same folder). Raises IsoBmffError when there is no video sample entry, OSError on I/O errors;
    on failure no partial ``dst`` is left.
    """
    src, new = Path(src), build_st3d(mode)
    dst = src if dst is None else Path(dst)
    boxes = read_top_level(src)
    moov = next(b for b in boxes if b.type == "moov")
    entries = _video_entries(moov)
    if not entries:
        raise IsoBmffError(f"{src}: no video track with an avc1/hvc1 sample entry")
    for entry in entries:
        kids = [c for c in entry.children or [] if c.type != "st3d"]
        at = next((i + 1 for i, c in enumerate(kids) if c.type in _CONFIG_BOXES), len(kids))
        entry.children = [*kids[:at], Box(new.type, data=new.data), *kids[at:]]
    # serialize_box recomputes the sizes of every ancestor (moov ... sample entry). Media data
    # after moov (a fast-start file) moves by moov's growth: shift the offsets that point there.
    # (stco entries keep their width, so the shift does not change moov's size again.)
    delta = len(serialize_box(moov)) - moov.size
    if delta:
        _shift_chunk_offsets(moov, moov.offset + moov.size, delta)
    out_moov = serialize_box(moov)
    tmp = dst.with_name(f".{dst.name}.st3d-{os.getpid()}.tmp")
    try:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            for b in boxes:
                if b.type == "moov":
                    fout.write(out_moov)
                    continue
                fin.seek(b.offset)
                _copy(fin, fout, b.size)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _copy(fin, fout, n: int) -> None:
    left = n
    while left > 0:
        chunk = fin.read(min(left, 1 << 22))
        if not chunk:
            raise IsoBmffError("the file ended inside a box")
        fout.write(chunk)
        left -= len(chunk)


def read_st3d(path: str | os.PathLike[str]) -> int | None:
    """The ``st3d`` stereo_mode of the first video sample entry, or None when it has none."""
    moov = next(b for b in read_top_level(path) if b.type == "moov")
    for entry in _video_entries(moov):
        box = entry.child("st3d")
        if box is not None:
            if len(box.data) < 5:
                raise IsoBmffError("truncated st3d box")
            return int(box.data[4])
    return None
