"""The ISO-BMFF box editor: st3d insertion keeps MP4s decodable (sizes and chunk offsets)."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from studio.export.isobmff import (
    IsoBmffError,
    find_boxes,
    insert_st3d,
    parse_boxes,
    read_st3d,
    read_top_level,
    serialize_box,
)


def make_mp4(path, codec="libx264", faststart=True, frames=6, audio=True, tag=None):
    """A small MP4 whose frames are distinct gradients; returns the decoded frames."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as c:
        vs = c.add_stream(codec, rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 32, "yuv420p"
        vs.options = {"crf": "30", "preset": "ultrafast"}
        if codec == "libx265":
            vs.options = {**vs.options, "x265-params": "log-level=error"}
        if tag:
            vs.codec_tag = tag
        if audio:
            a = c.add_stream("aac", rate=48000)
            a.layout = "stereo"
        for i in range(frames):
            img = np.zeros((32, 64, 3), np.uint8)
            img[:, :, 0] = np.linspace(0, 255, 64)[None] * (i + 1) / frames
            img[:, :, 1] = 40 * i
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
            if audio:
                af = av.AudioFrame.from_ndarray(
                    np.zeros((2, 1920), np.float32), format="fltp", layout="stereo"
                )
                af.sample_rate, af.pts, af.time_base = 48000, 1920 * i, Fraction(1, 48000)
                for p in a.encode(af):
                    c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if audio:
            for p in a.encode():
                c.mux(p)
    return decode(path)


def decode(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.parametrize("faststart", [True, False])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_st3d_inserted_and_file_still_decodes(tmp_path, faststart, mode):
    path = tmp_path / "clip.mp4"
    before = make_mp4(path, faststart=faststart)
    top = [b.type for b in read_top_level(path)]
    assert (top.index("moov") < top.index("mdat")) == faststart
    size_before = path.stat().st_size

    insert_st3d(path, mode)

    assert read_st3d(path) == mode
    assert path.stat().st_size == size_before + 13  # 8 header + 4 version/flags + 1 mode
    after = decode(path)
    assert len(after) == len(before)
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)
    with av.open(str(path)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert sum(1 for _ in c.decode(audio=0)) > 0
    # st3d sits right after avcC in the avc1 sample entry
    moov = next(b for b in read_top_level(path) if b.type == "moov")
    entry = next(find_boxes([moov], "moov/trak/mdia/minf/stbl/stsd/avc1"))
    kinds = [c.type for c in entry.children]
    assert kinds[kinds.index("avcC") + 1] == "st3d"
    st3d = entry.child("st3d")
    assert st3d.data == struct.pack(">IB", 0, mode)


def test_every_ancestor_size_is_consistent(tmp_path):
    path = tmp_path / "clip.mp4"
    make_mp4(path)
    insert_st3d(path, 2)
    data = path.read_bytes()
    boxes = parse_boxes(data)  # re-parsing checks that every box fits its parent exactly
    assert sum(b.size for b in boxes) == len(data)

    def check(box):
        assert box.size == box.total_size()
        for c in box.children or []:
            check(c)

    for b in boxes:
        check(b)


def test_insert_twice_replaces(tmp_path):
    path = tmp_path / "clip.mp4"
    make_mp4(path, audio=False)
    insert_st3d(path, 2)
    size = path.stat().st_size
    insert_st3d(path, 1)
    assert read_st3d(path) == 1
    assert path.stat().st_size == size
    assert len(decode(path)) == 6


def test_hevc_hvc1(tmp_path):
    path = tmp_path / "clip.mp4"
    before = make_mp4(path, codec="libx265", tag="hvc1", audio=False)
    insert_st3d(path, 2)
    moov = next(b for b in read_top_level(path) if b.type == "moov")
    entry = next(find_boxes([moov], "moov/trak/mdia/minf/stbl/stsd/hvc1"))
    kinds = [c.type for c in entry.children]
    assert kinds[kinds.index("hvcC") + 1] == "st3d"
    assert len(decode(path)) == len(before)


def test_parse_serialize_round_trip(tmp_path):
    path = tmp_path / "clip.mp4"
    make_mp4(path)
    data = path.read_bytes()
    moov_box = next(b for b in read_top_level(path) if b.type == "moov")
    raw = data[moov_box.offset : moov_box.offset + moov_box.size]
    assert serialize_box(parse_boxes(raw)[0]) == raw


def test_not_an_mp4(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00" + b"\x00\x00\x00\x50mdat")
    with pytest.raises(IsoBmffError):
        insert_st3d(bad, 2)
    assert bad.read_bytes().startswith(b"\x00\x00\x00\x10ftyp")  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["bad.mp4"]
