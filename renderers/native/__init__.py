"""Native (C, OpenMP) kernels, compiled on this machine and loaded with ctypes.

The sources live next to this file (``*.c``). ``load_library()`` compiles them once into a
shared library in a user cache directory (``$THS_NATIVE_CACHE``, else
``$XDG_CACHE_HOME/talking-head-studio/native``, else ``~/.cache/...``), keyed by a hash of the
sources, the compiler flags and this CPU's instruction-set flags (``-march=native``: a library
built for one CPU is never loaded on another), and returns it. ``.ci/setup`` builds it ahead of
time (``python -m renderers.native``); otherwise the first use does (~1 s). Nothing is
downloaded.

Why C and ctypes rather than a torch extension: a plain C compiler (gcc, installed by
``.ci/setup``) builds it in about a second, there is no Python-version-specific ABI, and ctypes
releases the GIL during every call, so a render on the GUI thread does not stall the capture
or audio threads. Without a compiler (or with ``THS_NATIVE=0``) ``load_library`` raises
``NativeUnavailable`` with the reason and callers fall back to their OpenGL paths.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["NativeUnavailable", "library_path", "load_library", "native_available"]

_SOURCES = ("splat_cpu.c",)
# -ffast-math lets the row loops vectorise (reassociation, no errno, and finite math: with
# -fno-finite-math-only the raster ran 6x slower); the C code tests for NaN/inf on the bits.
# 512-bit vectors: a tile row of 16 floats is one AVX-512 register (gcc prefers 256 otherwise).
_FLAGS = (
    "-O3",
    "-march=native",
    "-mprefer-vector-width=512",
    "-ffast-math",
    "-fopenmp",
    "-fPIC",
    "-shared",
)
_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_failure: str | None = None


class NativeUnavailable(RuntimeError):
    """The native kernels cannot be built or loaded here (the message says why)."""


def _cpu_signature() -> str:
    """Instruction-set flags of this CPU (part of the cache key: -march=native)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cache_dir() -> Path:
    if os.environ.get("THS_NATIVE_CACHE"):
        return Path(os.environ["THS_NATIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "talking-head-studio" / "native"


def library_path() -> Path:
    """Where the library for these sources, flags and this CPU lives (built or not)."""
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    h.update(" ".join(_FLAGS).encode())
    h.update(_cpu_signature().encode())
    h.update(platform.machine().encode())
    return _cache_dir() / f"libths_native-{h.hexdigest()[:16]}.so"


def _build(target: Path) -> None:
    cc = _compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler found (install gcc, or run .ci/setup)")
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = [str(Path(__file__).parent / name) for name in _SOURCES]
    # Build into a temporary name and rename: concurrent processes (test workers, a child
    # process) may build at the same time, and a half-written library must never be loaded.
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp.so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, *_FLAGS, *sources, "-o", tmp, "-lm"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise NativeUnavailable(
                f"compiling the native kernels with {cc} failed:\n{proc.stderr.strip()[-2000:]}"
            )
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeUnavailable(f"compiling the native kernels with {cc} failed: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _declare(lib: ctypes.CDLL) -> None:
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    lib.ths_camera_floats.restype = i32
    lib.ths_tile_size.restype = i32
    lib.ths_workspace_new.restype = p
    lib.ths_workspace_new.argtypes = []
    lib.ths_workspace_free.restype = None
    lib.ths_workspace_free.argtypes = [p]
    lib.ths_splat_render_cams.restype = i64
    lib.ths_splat_render_cams.argtypes = [
        i32, p, p, p, p, p, p, p, i32, p, i32,  # n, means .. sh, k, plane, planes
        i32, p, i32, i32, p,  # ncams, cams, width, height, bg
        p, p, i32, i64, i64, i64,  # out_f32, out_u8, channels, cam/plane/row strides
        i32, p, p,  # threads, workspace, stages
    ]  # fmt: skip
    if hasattr(lib, "ths_splat_render_ex"):  # absent from builds of older sources (benchmarks)
        lib.ths_splat_render_ex.restype = i64
        lib.ths_splat_render_ex.argtypes = [
            i32, p, p, p, p, p, p, p, i32, p, p, i32,  # n, means .. k, plane, far_w, planes
            i32, p, i32, i32, p,  # ncams, cams, width, height, bg
            p, p, i32, i64, i64, i64,  # out_f32, out_u8, channels, cam/plane/row strides
            i32, i32, p, p,  # flags, threads, workspace, stages
        ]  # fmt: skip


def load_library() -> ctypes.CDLL:
    """The compiled native library (built on first use). Raises NativeUnavailable."""
    global _library, _failure
    with _lock:
        if _library is not None:
            return _library
        if os.environ.get("THS_NATIVE", "1") == "0":
            raise NativeUnavailable("native kernels switched off (THS_NATIVE=0)")
        if _failure is not None:
            raise NativeUnavailable(_failure)
        try:
            path = library_path()
            if not path.exists():
                _build(path)
            lib = ctypes.CDLL(str(path))
            _declare(lib)
        except NativeUnavailable as exc:
            _failure = str(exc)
            raise
        except OSError as exc:
            _failure = f"loading the native kernels failed: {exc}"
            raise NativeUnavailable(_failure) from exc
        _library = lib
        return lib


def native_available() -> bool:
    """Whether ``load_library()`` succeeds (builds the library if needed)."""
    try:
        load_library()
    except NativeUnavailable:
        return False
    return True


def main() -> int:
    """``python -m renderers.native``: build (if needed) and report where the library is."""
    try:
        load_library()
    except NativeUnavailable as exc:
        print(f"native kernels unavailable: {exc}", file=sys.stderr)
        return 1
    print(f"native kernels: {library_path()}", file=sys.stderr)
    return 0
