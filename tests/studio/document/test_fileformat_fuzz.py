"""Fuzzing the loader: mutated files raise ProjectFileError (one line) or load; nothing else
escapes, and the file on disk is byte-identical afterwards. Seeded, a few hundred cases."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fileformat_factory import make_project, npy, read_members, write_members

from studio.document.fileformat import ProjectFileError, load_project, save_project

CASES_PER_KIND = 40


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # Few channels so each load is milliseconds; two takes, assets and clips as usual.
    p = make_project(duration=40, key_every=4, channels=("pitch", "yaw", "exp_19_y", "intensity"))
    path = tmp_path_factory.mktemp("orig") / "p.ths"
    save_project(p, path)
    return path.read_bytes()


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _flip(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def _flip_directory(rng: random.Random, data: bytes) -> bytes:
    # The central directory and end record: sizes, offsets, names, counts.
    b = bytearray(data)
    start = data.rfind(b"PK\x01\x02", 0, len(data) - 1000) if len(data) > 1000 else 0
    start = data.find(b"PK\x01\x02") if start < 0 else start
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(start, len(b))
        b[i] = rng.randrange(256)
    return bytes(b)


def _drop_member(rng: random.Random, data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    del members[rng.choice(sorted(members))]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return out.getvalue()


_WRONG = [None, True, -1, 0, 2**70, 1e308, -1.5, "", "x", "takes/0", [], [1, "a"], {}, {"a": 1}]


def _json_paths(v: object, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _json_paths(x, (*path, k))
    elif isinstance(v, list):
        for i, x in enumerate(v[:4]):
            out += _json_paths(x, (*path, i))
    return out


def _edit_json(rng: random.Random, data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    doc = json.loads(members["project.json"])
    path = rng.choice(_json_paths(doc)[1:])
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    action = rng.random()
    if action < 0.3:
        del parent[path[-1]]
    elif action < 0.9:
        parent[path[-1]] = rng.choice(_WRONG)
    else:
        doc["schema_version"] = rng.choice([2, 99, -3, "1", 1.0])
    members["project.json"] = json.dumps(doc).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return out.getvalue()


def _edit_array(rng: random.Random, data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    name = rng.choice(sorted(n for n in members if n.endswith(".npy")))
    a = np.load(io.BytesIO(members[name]))
    kind = rng.randrange(7)
    if kind == 0:
        a = a[: rng.randrange(max(1, a.shape[0]))]
    elif kind == 1:
        a = a.astype(rng.choice([np.float32, np.int32, np.float64, np.int64, ">f8"]))
    elif kind == 2 and a.dtype.kind == "f":
        a = a.copy()
        a.reshape(-1)[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e300])
    elif kind == 3:
        a = a.copy()
        rng_np = np.random.default_rng(rng.randrange(2**32))
        rng_np.shuffle(a)
    elif kind == 4:
        members[name] = members[name][: rng.randrange(len(members[name]))]
        a = None
    elif kind == 5:
        a = a.copy()
        info = np.iinfo(a.dtype) if a.dtype.kind in "iu" else np.finfo(a.dtype)
        v = rng.choice([info.min, info.max, -1, 3, 2**31])
        a.reshape(-1)[rng.randrange(a.size)] = min(max(v, info.min), info.max)
    else:
        members[name] = b"\x93NUMPY" + bytes(rng.randrange(256) for _ in range(60))
        a = None
    if a is not None:
        members[name] = npy(a)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return out.getvalue()


def _junk(rng: random.Random, data: bytes) -> bytes:
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    return junk + data if rng.random() < 0.5 else data[:-22] + junk + data[-22:]


MUTATORS = {
    "truncate": _truncate,
    "flip": _flip,
    "flip_directory": _flip_directory,
    "drop_member": _drop_member,
    "edit_json": _edit_json,
    "edit_array": _edit_array,
    "junk": _junk,
}


@pytest.mark.parametrize("kind", list(MUTATORS))
def test_mutated_files_fail_cleanly(kind: str, original: bytes, tmp_path: Path) -> None:
    mutate = MUTATORS[kind]
    errors = loaded = 0
    for case in range(CASES_PER_KIND):
        rng = random.Random(f"{kind}-{case}")
        data = mutate(rng, original)
        path = tmp_path / f"{kind}-{case}.ths"
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        try:
            load_project(path)
            loaded += 1
        except ProjectFileError as exc:
            errors += 1
            msg = str(exc)
            assert "\n" not in msg and msg.startswith(f"{path}: ") and len(msg) < 1000, msg
        # Any other exception fails the test here, naming kind and case.
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, (kind, case)
        path.unlink()
        assert os.listdir(tmp_path) == [], (kind, case)
    # The mutations must mostly break the file (else the fuzzer tests nothing).
    assert errors >= CASES_PER_KIND // 2, (kind, errors, loaded)


def test_fuzz_helpers_round_trip(original: bytes, tmp_path: Path) -> None:
    # Sanity: rewriting the archive without mutation still loads (so failures are mutations').
    src = tmp_path / "a.ths"
    src.write_bytes(original)
    write_members(tmp_path / "b.ths", read_members(src))
    assert load_project(tmp_path / "b.ths") == load_project(src)
