"""Project files (``.ths``): one ZIP archive per project, versioned, saved atomically.

Layout of a ``.ths`` archive (schema version 1)::

    project.json                 DEFLATED. Everything but the key arrays and asset bytes:
                                 format name, schema version, app version, frame rate, ranges,
                                 takes (ids, names, per-channel key counts), audio clips, head,
                                 camera, markers, asset table, metadata.
    takes/<i>/<field>.npy        One set per take (i = position in ``project.json``'s takes
                                 list): every curve of the take concatenated in channel order,
                                 one ``.npy`` (format 1.0, little-endian, no pickles) per curve
                                 array field (see ``CURVE_FIELDS``). Channel c's keys are
                                 ``[offset_c, offset_c + count_c)`` with offsets the running
                                 sum of the counts listed in ``project.json``.
                                 DEFLATED (level 1) when that pays, else STORED.
    assets/<name>                Embedded assets (audio WAVs, head files) as raw bytes;
                                 STORED when already compressed, else DEFLATED.
    recovery.json                Only in autosave files (see ``studio.document.recovery``).

External assets are kept as references in ``project.json``: a path relative to the project
file's folder when it lies below it (POSIX separators), absolute otherwise; loading resolves it
and fails with a message naming the path when the file is missing.

Every problem found while loading is a :class:`ProjectFileError` whose message is one line
naming the file and the problem; loading only ever opens the file for reading. Saving writes a
temporary file beside the target, fsyncs it, keeps the previous version as ``NAME.bak`` and
renames the new file over the target, so the target name always holds a complete project.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models.motion_space import CHANNEL_INDEX
from studio.document.curve import Curve, HandleMode, Interpolation
from studio.document.errors import DocumentError
from studio.document.project import AudioClip, CameraSettings, HeadRef, Marker, Project
from studio.document.take import Take
from studio.document.timebase import FrameRate

__all__ = [
    "FORMAT_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ProjectFileError",
    "atomic_write",
    "load_project",
    "read_project_info",
    "register_migration",
    "save_project",
]

FORMAT_NAME = "talking-head-studio"
SCHEMA_VERSION = 1
# Assets that ship with the application (e.g. "builtin:default", the default head) are stored by
# name, never embedded or resolved as paths; the studio resolves them (studio.heads).
BUILTIN_PREFIX = "builtin:"
PROJECT_MEMBER = "project.json"

# A project.json larger than this is not something we wrote (a 10-minute project is ~40 kB).
_MAX_JSON_BYTES = 256 * 1024 * 1024


class ProjectFileError(Exception):
    """A project file that cannot be read or written.

    ``str(error)`` is one line: ``"<path>: <problem>"``. ``path`` and ``problem`` are also
    attributes, for dialogs that lay them out separately.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        # One line, whatever the cause's text looked like; long causes are cut, not wrapped.
        problem = " ".join(str(problem).split())
        if len(problem) > 400:
            problem = problem[:397] + "..."
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type[ProjectFileError], tuple[str, str]]:
        # Picklable (worker processes): the default would call __init__ with the message only.
        return (type(self), (self.path, self.problem))


class _Invalid(Exception):
    """Internal: a problem in the file's contents, turned into ProjectFileError at the top."""


# ------------------------------------------------------------------------------------------------
# Schema migrations. A migration takes the parsed project.json of version v and the archive's
# member reader, and returns the document of version v + 1 (it may read members, never write).
# Register with @register_migration(v). load_project applies them in order up to SCHEMA_VERSION.

Migration = Callable[[dict[str, Any], Callable[[str], bytes]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}


def register_migration(from_version: int) -> Callable[[Migration], Migration]:
    """Decorator registering the migration from schema ``from_version`` to ``from_version + 1``."""

    def deco(fn: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(f"a migration from schema version {from_version} already exists")
        MIGRATIONS[from_version] = fn
        return fn

    return deco


def _migrate(doc: dict[str, Any], version: int, read: Callable[[str], bytes]) -> dict[str, Any]:
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise _Invalid(f"schema version {version} is no longer supported (no migration)")
        doc = step(doc, read)
        version += 1
        if not isinstance(doc, dict):
            raise _Invalid(f"migration from schema version {version - 1} failed")
        doc["schema_version"] = version
    return doc


# ------------------------------------------------------------------------------------------------
# Atomic writing


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (e.g. certain network mounts) refuse fsync on folders
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (conservative: True if unsure)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+$")


def _tmp_name(target: Path) -> Path:
    # Hidden, in the same folder (so os.replace is a rename on one file system), and carrying
    # our pid so a later save can tell leftovers of killed processes from live writes.
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files for ``target`` and for its backup (``_keep_backup`` links the
    backup through a temporary name too) left by processes that no longer exist."""
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    names = (target.name, target.name + ".bak")
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if m and m["name"] in names and not _pid_alive(int(m["pid"])):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _backup_names(target: Path, backups: int) -> list[Path]:
    # NAME.ths.bak, NAME.ths.bak2, NAME.ths.bak3 ... newest first.
    return [target.with_name(target.name + (".bak" if i == 1 else f".bak{i}")) for i in
            range(1, backups + 1)]  # fmt: skip


def _keep_backup(target: Path, backups: int) -> None:
    """Rotate ``NAME.bak*`` and make ``NAME.bak`` the current ``target`` (which stays in place)."""
    names = _backup_names(target, backups)
    for older, newer in zip(reversed(names[1:]), reversed(names[:-1]), strict=True):
        if newer.exists():
            os.replace(newer, older)
    bak_tmp = _tmp_name(target.with_name(target.name + ".bak"))
    try:
        # A hard link gives the backup the old bytes without copying and without the target
        # ever going missing; file systems without links get a copy.
        try:
            os.link(target, bak_tmp)
        except OSError:
            shutil.copy2(target, bak_tmp)
        os.replace(bak_tmp, names[0])
    finally:
        with contextlib.suppress(OSError):
            os.unlink(bak_tmp)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[io.BufferedWriter], None],
    *,
    backups: int = 1,
    fsync: bool = True,
) -> None:
    """Write a file so that ``path`` always holds either the old or the complete new contents.

    ``write(f)`` writes the contents into a temporary file beside ``path``; it is flushed and
    fsynced, the current file (if any) becomes ``path + ".bak"`` (older backups rotate to
    ``.bak2`` ... ``.bak{backups}``; ``backups=0`` keeps none), and the temporary file is
    renamed onto ``path`` and the folder fsynced. A symlink at ``path`` is followed. The new
    file gets the old file's permission bits (new files: 0o666 minus the umask). On failure the
    temporary file is removed and the exception propagates; ``path`` is untouched.
    """
    if backups < 0:
        raise ValueError(f"backups must be >= 0, got {backups}")
    target = Path(os.path.realpath(path))
    _remove_stale_temps(target)
    tmp = _tmp_name(target)
    try:
        old_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        old_mode = None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if old_mode is not None:
                with contextlib.suppress(OSError):
                    os.chmod(tmp, old_mode)
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if backups and target.is_file():
            _keep_backup(target, backups)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(target.parent)


# ------------------------------------------------------------------------------------------------
# Arrays as .npy members


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _read_npy(data: bytes, member: str, dtype: np.dtype, tail: tuple[int, ...]) -> np.ndarray:
    """Parse a .npy member, insisting on ``dtype`` (either byte order) and shape ``[K, *tail]``.

    The header is checked against the data's length before anything is allocated, so a
    damaged header cannot ask for terabytes. Returns a native-byte-order, C-ordered array.
    """
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, got = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, got = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # the .npy parser raises ValueError, EOFError, SyntaxError...
        raise _Invalid(f"corrupt member {member} (not a readable array: {exc})") from None
    if got.kind != dtype.kind or got.itemsize != dtype.itemsize or got.hasobject:
        raise _Invalid(f"member {member} has dtype {got}, expected {dtype}")
    if len(shape) != 1 + len(tail) or tuple(shape[1:]) != tail:
        want = "[K" + "".join(f", {t}" for t in tail) + "]"
        raise _Invalid(f"member {member} has shape {list(shape)}, expected {want}")
    count = math.prod(shape)
    offset = fp.tell()
    if len(data) - offset != count * got.itemsize:
        raise _Invalid(f"corrupt member {member} (array data is {len(data) - offset} bytes, "
                       f"header says {count * got.itemsize})")  # fmt: skip
    arr = np.frombuffer(data, dtype=got, count=count, offset=offset)
    arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    # Native byte order and C order, so evaluation code never meets a big-endian view.
    return np.ascontiguousarray(arr, dtype=dtype)


# Magic numbers of formats that DEFLATE cannot shrink: store them as they are.
_COMPRESSED_MAGIC = (
    b"\x89PNG", b"\xff\xd8\xff", b"PK\x03\x04", b"fLaC", b"OggS", b"ID3", b"\xff\xfb",
    b"\x1f\x8b", b"(\xb5/\xfd",
)  # fmt: skip


def _compress_type(data: bytes) -> int:
    """DEFLATE only when a sample of the data shrinks by 10 % or more (saves time on floats)."""
    if len(data) < 4096:
        return zipfile.ZIP_DEFLATED
    if data.startswith(_COMPRESSED_MAGIC):
        return zipfile.ZIP_STORED
    sample = data[: 1 << 18]
    ratio = len(zlib.compress(sample, 1)) / len(sample)
    return zipfile.ZIP_DEFLATED if ratio < 0.9 else zipfile.ZIP_STORED


# ------------------------------------------------------------------------------------------------
# Typed access to project.json, with the field's path in every message.


def _where(where: str, key: str | int) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else key)


def _field(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise _Invalid(f"missing field {_where(where, key)}")
    return d[key]


def _type_name(v: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             type(None): "null", int: "an integer", float: "a number"}  # fmt: skip
    return names.get(type(v), type(v).__name__)


def _expect(v: Any, types: type | tuple[type, ...], what: str, where: str) -> Any:
    # bool is an int in Python but never a valid number here.
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
        raise _Invalid(f"field {where}: expected {what}, got {_type_name(v)}")
    return v


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _get_dict(d: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    return _expect(_field(d, key, where), dict, "an object", _where(where, key))


def _get_list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    return _expect(_field(d, key, where), list, "a list", _where(where, key))


def _get_str(d: Mapping[str, Any], key: str, where: str) -> str:
    return _expect(_field(d, key, where), str, "a string", _where(where, key))


def _get_bool(d: Mapping[str, Any], key: str, where: str) -> bool:
    return _expect(_field(d, key, where), bool, "true or false", _where(where, key))


def _get_int(d: Mapping[str, Any], key: str, where: str) -> int:
    return _expect(_field(d, key, where), int, "an integer", _where(where, key))


def _get_float(d: Mapping[str, Any], key: str, where: str) -> float:
    v = _expect(_field(d, key, where), (int, float), "a number", _where(where, key))
    if not math.isfinite(v):
        raise _Invalid(f"field {_where(where, key)}: {v} is not a finite number")
    return float(v)


def _get_float_list(d: Mapping[str, Any], key: str, where: str, n: int) -> tuple[float, ...]:
    v = _get_list(d, key, where)
    if len(v) != n:
        raise _Invalid(f"field {_where(where, key)}: expected {n} numbers, got {len(v)}")
    return tuple(_get_float({"_": x}, "_", _where(_where(where, key), i)) for i, x in enumerate(v))


def _reject_constant(name: str) -> float:
    raise _Invalid(f"project.json contains {name}, which is not a valid value")


def _json_bytes(doc: Any) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON and would not load back.
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=1).encode("utf-8")


def _check_json_value(v: Any, where: str) -> None:
    """Metadata must survive a JSON round trip unchanged: str keys, plain JSON values."""
    if v is None or isinstance(v, (str, bool, int)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _Invalid(f"{where} is {v}, which a project file cannot store")
        return
    if isinstance(v, list):
        for i, x in enumerate(v):
            _check_json_value(x, f"{where}[{i}]")
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise _Invalid(f"{where} has a non-string key {k!r}")
            _check_json_value(x, f"{where}.{k}")
        return
    raise _Invalid(f"{where} is a {type(v).__name__}, which a project file cannot store")


# ------------------------------------------------------------------------------------------------
# Reading the archive


class _Archive:
    """A ZIP archive read fully into memory (one read of the file; nothing is ever written)."""

    def __init__(self, path: Path) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise _Invalid("no such file") from None
        except IsADirectoryError:
            raise _Invalid("is a folder, not a project file") from None
        except OSError as exc:
            raise _Invalid(f"cannot read the file ({exc.strerror or exc})") from None
        if not data:
            raise _Invalid("the file is empty (0 bytes)")
        if not data.startswith(b"PK\x03\x04"):
            raise _Invalid("not a Talking Head Studio project (not a ZIP archive)")
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
            self.names = set(self.zf.namelist())
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError,
                NotImplementedError) as exc:  # fmt: skip
            raise _Invalid(
                f"the file is truncated or damaged (ZIP archive unreadable: {exc})"
            ) from None

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise _Invalid(f"member {name} is missing from the archive")
        try:
            return self.zf.read(name)
        except zipfile.BadZipFile as exc:
            raise _Invalid(f"corrupt member {name} ({exc})") from None
        except (zlib.error, EOFError, ValueError, OSError, NotImplementedError,
                RuntimeError) as exc:  # fmt: skip
            raise _Invalid(f"corrupt member {name} ({type(exc).__name__}: {exc})") from None


def _read_doc(archive: _Archive) -> dict[str, Any]:
    if PROJECT_MEMBER not in archive.names:
        raise _Invalid(f"not a Talking Head Studio project (no {PROJECT_MEMBER} in the archive)")
    info = archive.zf.getinfo(PROJECT_MEMBER)
    if info.file_size > _MAX_JSON_BYTES:
        raise _Invalid(f"{PROJECT_MEMBER} is implausibly large ({info.file_size} bytes)")
    raw = archive.read(PROJECT_MEMBER)
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _Invalid(f"corrupt member {PROJECT_MEMBER} (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise _Invalid(f"corrupt member {PROJECT_MEMBER} (invalid JSON: {exc})") from None
    except RecursionError:
        raise _Invalid(f"corrupt member {PROJECT_MEMBER} (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise _Invalid(f"{PROJECT_MEMBER} is {_type_name(doc)}, expected an object")
    fmt = doc.get("format")
    if fmt != FORMAT_NAME:
        raise _Invalid(f"not a Talking Head Studio project (format {fmt!r} in {PROJECT_MEMBER})")
    version = _get_int(doc, "schema_version", "")
    if version > SCHEMA_VERSION:
        app = doc.get("app_version")
        by = f" by Talking Head Studio {app}" if isinstance(app, str) and len(app) < 40 else ""
        raise _Invalid(
            f"written{by} with newer schema version {version} > supported {SCHEMA_VERSION};"
            " update Talking Head Studio to open it"
        )
    if version < 1:
        raise _Invalid(f"invalid schema version {version}")
    return _migrate(doc, version, archive.read)


# ------------------------------------------------------------------------------------------------
# Curve key arrays. One .npy member per field and take: (attribute on Curve, member stem,
# little-endian dtype written, trailing shape).
CURVE_FIELDS: tuple[tuple[str, str, str, tuple[int, ...]], ...] = (
    ("frames", "frames", "<i8", ()),
    ("values", "values", "<f8", ()),
    ("interp", "interp", "|i1", ()),
    ("handle_mode", "handle_mode", "|i1", ()),
    ("left", "left", "<f8", (2,)),
    ("right", "right", "<f8", (2,)),
)


def _check_keys(
    arrays: dict[str, np.ndarray], counts: list[int], names: list[str], where: str
) -> None:
    """Validate a take's concatenated key arrays (shared by save and load)."""
    total = sum(counts)
    for attr, _stem, _dt, _tail in CURVE_FIELDS:
        n = arrays[attr].shape[0]
        if n != total:
            raise _Invalid(f"{where}: keys of wrong length ({attr} has {n}, channels list {total})")
    frames = arrays["frames"]
    if total > 1:
        # Strictly increasing within each curve; a curve's first key may be anywhere.
        ok = np.diff(frames) > 0
        starts = np.cumsum(counts)[:-1]
        starts = starts[(starts > 0) & (starts < total)]
        ok[starts - 1] = True
        if not ok.all():
            i = int(np.argmin(ok)) + 1
            c = int(np.searchsorted(np.cumsum(counts), i, side="right"))
            raise _Invalid(
                f"{where}: non-increasing frames in channel {names[c]} "
                f"({int(frames[i - 1])} then {int(frames[i])})"
            )
    for attr, enum in (("interp", Interpolation), ("handle_mode", HandleMode)):
        bad = ~np.isin(arrays[attr], [int(m) for m in enum])
        if bad.any():
            k = int(np.argmax(bad))
            c = int(np.searchsorted(np.cumsum(counts), k, side="right"))
            raise _Invalid(
                f"{where}: invalid {attr} code {int(arrays[attr][k])} in channel {names[c]}"
            )
    for attr, _stem, dt, _tail in CURVE_FIELDS:
        if np.dtype(dt).kind == "f":
            bad = ~np.isfinite(arrays[attr])
            if bad.any():
                k = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
                c = int(np.searchsorted(np.cumsum(counts), k, side="right"))
                raise _Invalid(f"{where}: NaN/inf key {attr} in channel {names[c]}")


def _app_version() -> str:
    from studio import __version__

    return __version__


def _asset_ref(asset: str, project: Project, relative_to: Path | None) -> dict[str, str]:
    """JSON form of an asset reference: an embedded asset's name or an external path.

    External paths (relative ones are taken relative to the working folder) are stored
    relative to ``relative_to`` when they lie below it, absolute otherwise.
    """
    if asset in project.assets:
        return {"embedded": asset}
    if asset.startswith(BUILTIN_PREFIX):
        return {"builtin": asset[len(BUILTIN_PREFIX) :]}
    path = Path(os.path.abspath(asset))
    if relative_to is not None:
        with contextlib.suppress(ValueError):
            return {"external": path.relative_to(relative_to).as_posix()}
    return {"external": str(path)}


def _asset_members(assets: Mapping[str, bytes]) -> dict[str, str]:
    """Asset name -> archive member, with names made safe for every unzip tool."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in assets:
        safe = re.sub(r"[^0-9A-Za-z._-]+", "_", name).strip("._") or "asset"
        safe = safe[:100]
        member, n = f"assets/{safe}", 1
        while member.lower() in used:  # case-insensitive file systems unzip into one folder
            n += 1
            stem, dot, ext = safe.rpartition(".")
            member = f"assets/{stem}-{n}.{ext}" if dot and stem else f"assets/{safe}-{n}"
        used.add(member.lower())
        out[name] = member
    return out


def _project_to_doc(
    project: Project, relative_to: Path | None
) -> tuple[dict[str, Any], list[tuple[str, bytes, int]]]:
    """project.json content and the other members (name, bytes, compression)."""
    members: list[tuple[str, bytes, int]] = []
    takes = []
    for ti, take in enumerate(project.takes):
        where = f"take {take.id!r}"
        names = sorted(take.curves, key=lambda c: CHANNEL_INDEX.get(c, len(CHANNEL_INDEX)))
        for name in names:
            if name not in CHANNEL_INDEX:
                raise _Invalid(f"{where}: unknown channel name {name!r}")
        curves = [take.curves[n] for n in names]
        counts = [int(np.shape(c.frames)[0]) for c in curves]
        arrays: dict[str, np.ndarray] = {}
        for attr, _stem, dt, tail in CURVE_FIELDS:
            parts = [np.asarray(getattr(c, attr)).reshape(-1, *tail) for c in curves]
            arrays[attr] = (np.concatenate(parts) if parts else np.zeros((0, *tail))).astype(dt)
        _check_keys(arrays, counts, names, where)
        prefix = f"takes/{ti}"
        for attr, stem, _dt, _tail in CURVE_FIELDS:
            data = _npy_bytes(arrays[attr])
            members.append((f"{prefix}/{stem}.npy", data, _compress_type(data)))
        _check_json_value(take.metadata, f"{where} metadata")
        takes.append(
            {
                "id": take.id,
                "name": take.name,
                "source": take.source,
                "metadata": take.metadata,
                "keys": prefix,
                "channels": names,
                "key_counts": counts,
            }
        )
    asset_members = _asset_members(project.assets)
    assets = []
    for name, data in project.assets.items():
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _Invalid(f"asset {name!r} is {type(data).__name__}, not bytes")
        data = bytes(data)
        members.append((asset_members[name], data, _compress_type(data)))
        assets.append({"name": name, "member": asset_members[name], "size": len(data)})
    clips = [
        {
            "id": c.id,
            "name": c.name,
            "asset": _asset_ref(c.asset, project, relative_to),
            "offset": c.offset,
            "gain": c.gain,
            "muted": c.muted,
        }
        for c in project.audio_clips
    ]
    head = project.head
    cam = project.camera
    _check_json_value(project.metadata, "project metadata")
    doc = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "app_version": _app_version(),
        "frame_rate": [project.frame_rate.numerator, project.frame_rate.denominator],
        "duration": project.duration,
        "work_range": list(project.work_range),
        "active_take": project.active_take_id,
        "takes": takes,
        "audio_clips": clips,
        "head": None if head is None else {
            "asset": _asset_ref(head.asset, project, relative_to),
            "kind": head.kind,
        },
        "camera": {
            "yaw": cam.yaw,
            "pitch": cam.pitch,
            "distance": cam.distance,
            "fov_deg": cam.fov_deg,
            "target": list(cam.target),
            "ipd": cam.ipd,
            "convergence": cam.convergence,
        },
        "markers": [{"frame": m.frame, "name": m.name} for m in project.markers],
        "assets": assets,
        "metadata": project.metadata,
    }  # fmt: skip
    return doc, members


def _load_asset_ref(
    v: Any, where: str, embedded: Mapping[str, bytes], base: Path | None, missing_ok: bool
) -> str:
    ref = _expect(v, dict, "an object", where)
    if "embedded" in ref:
        name = _get_str(ref, "embedded", where)
        if name not in embedded:
            raise _Invalid(f"field {where}: embedded asset {name!r} is not in the asset table")
        return name
    if "builtin" in ref:
        name = _get_str(ref, "builtin", where)
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise _Invalid(f"field {where}: invalid built-in asset name {name!r}")
        return BUILTIN_PREFIX + name
    rel = _get_str(ref, "external", where)
    if not rel or "\x00" in rel:
        raise _Invalid(f"field {where}: invalid external asset path {rel!r}")
    path = Path(rel)
    if not path.is_absolute():
        if base is None:
            raise _Invalid(f"field {where}: relative external asset {rel!r}")
        path = base / path
    if not missing_ok and not path.is_file():
        raise _Invalid(f"missing external asset {path}")
    return str(path)


def _doc_to_project(
    doc: dict[str, Any], archive: _Archive, base: Path | None, missing_ok: bool
) -> Project:
    # Assets first: clips and the head refer to them.
    assets: dict[str, bytes] = {}
    for i, a in enumerate(_get_list(doc, "assets", "")):
        where = f"assets[{i}]"
        a = _expect(a, dict, "an object", where)
        name = _get_str(a, "name", where)
        member = _get_str(a, "member", where)
        if name in assets:
            raise _Invalid(f"field {where}: duplicate asset name {name!r}")
        data = archive.read(member)
        size = _get_int(a, "size", where)
        if size != len(data):
            raise _Invalid(f"corrupt member {member} ({len(data)} bytes, expected {size})")
        assets[name] = data

    fr = _get_list(doc, "frame_rate", "")
    if len(fr) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in fr):
        raise _Invalid("field frame_rate: expected [numerator, denominator] integers")

    takes = []
    for ti, t in enumerate(_get_list(doc, "takes", "")):
        where = f"takes[{ti}]"
        t = _expect(t, dict, "an object", where)
        take_id = _get_str(t, "id", where)
        prefix = _get_str(t, "keys", where)
        names = _get_list(t, "channels", where)
        counts = _get_list(t, "key_counts", where)
        if len(names) != len(counts):
            raise _Invalid(f"field {where}: {len(names)} channels but {len(counts)} key counts")
        for ci, (name, count) in enumerate(zip(names, counts, strict=True)):
            _expect(name, str, "a string", f"{where}.channels[{ci}]")
            _expect(count, int, "an integer", f"{where}.key_counts[{ci}]")
            if name not in CHANNEL_INDEX:
                raise _Invalid(f"take {take_id!r}: unknown channel name {name!r}")
            if count < 0:
                raise _Invalid(f"field {where}.key_counts[{ci}]: negative key count {count}")
        if len(set(names)) != len(names):
            raise _Invalid(f"take {take_id!r}: a channel is listed twice")
        arrays = {
            attr: _read_npy(archive.read(f"{prefix}/{stem}.npy"), f"{prefix}/{stem}.npy",
                            np.dtype(dt).newbyteorder("="), tail)
            for attr, stem, dt, tail in CURVE_FIELDS
        }  # fmt: skip
        _check_keys(arrays, counts, names, f"take {take_id!r}")
        curves = {}
        ends = np.cumsum(counts)
        for name, end, count in zip(names, ends, counts, strict=True):
            sl = slice(int(end) - count, int(end))
            try:
                curves[name] = Curve(
                    **{attr: arrays[attr][sl] for attr, *_ in CURVE_FIELDS}, channel=name
                )
            except DocumentError as exc:
                raise _Invalid(f"take {take_id!r}: {exc}") from None
        metadata = _get_dict(t, "metadata", where)
        takes.append(Take(
            id=take_id,
            name=_get_str(t, "name", where),
            curves=curves,
            source=_get_str(t, "source", where),
            metadata=metadata,
        ))  # fmt: skip

    clips = []
    for i, c in enumerate(_get_list(doc, "audio_clips", "")):
        where = f"audio_clips[{i}]"
        c = _expect(c, dict, "an object", where)
        clips.append(AudioClip(
            id=_get_str(c, "id", where),
            name=_get_str(c, "name", where),
            asset=_load_asset_ref(
                _field(c, "asset", where), f"{where}.asset", assets, base, missing_ok
            ),
            offset=_get_int(c, "offset", where),
            gain=_get_float(c, "gain", where),
            muted=_get_bool(c, "muted", where),
        ))  # fmt: skip
    _check_audio(clips, assets, missing_ok)

    head_doc = _field(doc, "head", "")
    head = None
    if head_doc is not None:
        h = _expect(head_doc, dict, "an object or null", "head")
        head = HeadRef(
            asset=_load_asset_ref(
                _field(h, "asset", "head"), "head.asset", assets, base, missing_ok
            ),
            kind=_get_str(h, "kind", "head"),
        )
    cam = _get_dict(doc, "camera", "")
    camera = CameraSettings(
        yaw=_get_float(cam, "yaw", "camera"),
        pitch=_get_float(cam, "pitch", "camera"),
        distance=_get_float(cam, "distance", "camera"),
        fov_deg=_get_float(cam, "fov_deg", "camera"),
        target=_get_float_list(cam, "target", "camera", 3),
        ipd=_get_float(cam, "ipd", "camera"),
        convergence=_get_float(cam, "convergence", "camera"),
    )
    markers = []
    for i, m in enumerate(_get_list(doc, "markers", "")):
        where = f"markers[{i}]"
        m = _expect(m, dict, "an object", where)
        markers.append(Marker(frame=_get_int(m, "frame", where), name=_get_str(m, "name", where)))
    wr = _get_list(doc, "work_range", "")
    if len(wr) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in wr):
        raise _Invalid("field work_range: expected [start, end] integers")
    return Project(
        frame_rate=FrameRate(fr[0], fr[1]),
        duration=_get_int(doc, "duration", ""),
        work_range=(wr[0], wr[1]),
        takes=takes,
        active_take_id=_get_str(doc, "active_take", ""),
        audio_clips=clips,
        head=head,
        camera=camera,
        markers=markers,
        assets=assets,
        metadata=_get_dict(doc, "metadata", ""),
    )


def _check_audio(clips: Iterable[AudioClip], assets: Mapping[str, bytes], missing_ok: bool) -> None:
    """Audio must at least have a readable header (decoding waits until it is played)."""
    clips = list(clips)
    if not clips:
        return
    import soundfile as sf  # lazily: ~0.1 s to import, and only projects with audio need it

    for asset in dict.fromkeys(c.asset for c in clips):  # each file once, in order
        data = assets.get(asset)
        if data is None and missing_ok and not os.path.isfile(asset):
            continue
        label = f"audio asset {asset!r}" if data is not None else f"audio file {asset}"
        try:
            info = sf.info(io.BytesIO(data) if data is not None else asset)
            if info.frames <= 0 or info.samplerate <= 0:
                raise _Invalid(f"unreadable {label} (no samples)")
        except _Invalid:
            raise
        except Exception as exc:  # libsndfile errors come as several types
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise _Invalid(f"unreadable {label} ({detail})") from None


# ------------------------------------------------------------------------------------------------
# Public entry points


def _save(
    project: Project,
    path: str | os.PathLike[str],
    *,
    backups: int,
    relative_to: Path | str | None = "auto",
    extra_members: Mapping[str, bytes] | None = None,
    fsync: bool = True,
) -> None:
    target = Path(os.path.realpath(path))
    base = target.parent if relative_to == "auto" else relative_to
    try:
        doc, members = _project_to_doc(project, base)  # type: ignore[arg-type]
        head = _json_bytes(doc)
    except _Invalid as exc:
        raise ProjectFileError(path, f"cannot save: {exc}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise ProjectFileError(path, f"cannot save: invalid project ({exc})") from exc

    def write(f: io.BufferedWriter) -> None:
        with zipfile.ZipFile(f, "w", allowZip64=True) as zf:
            _write_member(zf, PROJECT_MEMBER, head, zipfile.ZIP_DEFLATED)
            for name, data, compression in members:
                _write_member(zf, name, data, compression)
            for name, data in (extra_members or {}).items():
                _write_member(zf, name, data, zipfile.ZIP_DEFLATED)

    try:
        atomic_write(target, write, backups=backups, fsync=fsync)
    except OSError as exc:
        raise ProjectFileError(path, f"cannot save ({exc.strerror or exc})") from exc


def _write_member(zf: zipfile.ZipFile, name: str, data: bytes, compression: int) -> None:
    # A fixed timestamp keeps saves of the same project byte-identical.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = compression
    zf.writestr(info, data, compresslevel=1 if compression == zipfile.ZIP_DEFLATED else None)


def save_project(project: Project, path: str | os.PathLike[str], *, backups: int = 1) -> None:
    """Save ``project`` to ``path`` (a ``.ths`` file) atomically.

    The previous file, if any, is kept as ``path + ".bak"`` (``backups`` generations:
    ``.bak``, ``.bak2`` ...; 0 keeps none). External assets below the project's folder are
    stored as relative paths. Raises ProjectFileError (one line) when the project holds
    something a project file cannot store (unknown channel, NaN key, non-JSON metadata...) or
    the file cannot be written; the file at ``path`` is then unchanged.
    """
    _save(project, path, backups=backups)


def load_project(path: str | os.PathLike[str], *, missing_assets: str = "error") -> Project:
    """Read a ``.ths`` project file. Never writes anything.

    External assets come back as absolute paths. ``missing_assets="keep"`` loads a project
    whose external asset files are missing (keeping their paths, for the UI to relink);
    the default ``"error"`` refuses it.

    Raises ProjectFileError (one line naming the file and the problem) for a missing,
    truncated, damaged or foreign file, a newer schema version, and any invalid content:
    missing or mistyped fields, unknown channels, NaN/inf keys, non-increasing frames, key
    arrays of the wrong length, unreadable audio, missing external assets.
    """
    if missing_assets not in ("error", "keep"):
        raise ValueError(f"missing_assets must be 'error' or 'keep', got {missing_assets!r}")
    with _load_errors(path):
        archive = _Archive(Path(path))
        doc = _read_doc(archive)
        # Relative asset paths were written relative to the real file's folder (save follows
        # symlinks), so resolve them from there.
        base = Path(os.path.realpath(path)).parent
        return _doc_to_project(doc, archive, base, missing_assets == "keep")
    raise AssertionError("unreachable")  # _load_errors always raises or the body returns


def read_project_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """project.json of a project file (after migration), without building the project.

    For "open recent" lists and file dialogs. Raises ProjectFileError like load_project.
    """
    with _load_errors(path):
        return _read_doc(_Archive(Path(path)))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _load_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn every exception of a load into a one-line ProjectFileError naming ``path``."""
    try:
        yield
    except _Invalid as exc:
        raise ProjectFileError(path, str(exc)) from None
    except DocumentError as exc:  # the model's own invariants (Project.validate, Curve...)
        raise ProjectFileError(path, f"invalid project: {exc}") from None
    except ProjectFileError:
        raise
    except Exception as exc:  # anything unforeseen (a migration, a library) still gets a line
        raise ProjectFileError(path, f"invalid project ({type(exc).__name__}: {exc})") from exc
