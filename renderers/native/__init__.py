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
``THS_NATIVE_ISA=avx2`` or ``portable`` builds the raster's other instruction-set paths (see
``_ISA_FLAGS``); ``ths_simd_width()`` says which one a library has.
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
)
# Linked WITHOUT -ffast-math: gcc (before 13) then adds crtfastmath.o even to a shared library,
# whose constructor sets flush-to-zero / denormals-are-zero for the whole process as the library
# loads, so numpy and torch would silently compute differently (a test using hypothesis caught
# it). Compiling alone with -ffast-math changes only this code.
_LINK_FLAGS = ("-shared", "-fopenmp")
# THS_NATIVE_ISA picks the instruction-set path: "native" (default, -march=native: AVX-512 where
# the CPU has it), "avx2" (this CPU less AVX-512: the path of most desktop CPUs, to test and
# measure it on an AVX-512 machine) or "portable" (the compiler-vectorised loops).
_ISA_FLAGS = {"native": (), "avx2": ("-mno-avx512f",), "portable": ("-DTHS_PORTABLE",)}
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


def _flags() -> tuple[str, ...]:
    isa = os.environ.get("THS_NATIVE_ISA", "native")
    if isa not in _ISA_FLAGS:
        raise NativeUnavailable(
            f"THS_NATIVE_ISA={isa!r} is not one of {', '.join(sorted(_ISA_FLAGS))}"
        )
    return (*_FLAGS, *_ISA_FLAGS[isa])


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
    h.update(" ".join((*_flags(), "|", *_LINK_FLAGS)).encode())
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
    objects = [f"{tmp}.{i}.o" for i in range(len(sources))]
    flags = _flags()
    steps = [[cc, *flags, "-c", src, "-o", obj] for src, obj in zip(sources, objects, strict=True)]
    steps.append([cc, *_LINK_FLAGS, *objects, "-o", tmp, "-lm"])
    try:
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                raise NativeUnavailable(
                    f"compiling the native kernels with {cc} failed:\n{proc.stderr.strip()[-2000:]}"
                )
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeUnavailable(f"compiling the native kernels with {cc} failed: {exc}") from exc
    finally:
        for path in (tmp, *objects):
            if os.path.exists(path):
                os.unlink(path)


def _declare(lib: ctypes.CDLL) -> None:
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    lib.ths_camera_floats.restype = i32
    lib.ths_tile_size.restype = i32
    if hasattr(lib, "ths_simd_width"):  # (older builds, compared in benchmarks, lack it)
        lib.ths_simd_width.restype = i32
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


def _load_passive(path: Path) -> ctypes.CDLL:
    """Loads the library with OpenMP's idle threads sleeping rather than spinning.

    libgomp reads its environment once, when it is first loaded. Unset, an idle OpenMP thread
    spins (up to 300,000 pause loops) after every parallel region, through the serial depth
    sort and after each call, on a core the rest of the process needs (the export's encoder and
    deform threads, a capture thread). Measured on 2 cores at load ~2 (stereo 512 pair, a call
    then 30 ms idle, separate processes interleaved): 81 -> 67 and 95 -> 81 ms CPU per frame,
    wall 80 -> 72 and 92 -> 82 ms; the export (``benchmarks.export --frames 96``, load 1-1.6)
    ~108 -> ~106 ms CPU a frame, its kernel worker 52-57 -> 47-50; back-to-back calls on a
    quieter machine: the same within noise (mono ~21 ms). So, unless the user set
    OMP_WAIT_POLICY or GOMP_SPINCOUNT, the library is loaded with OMP_WAIT_POLICY=passive and
    the variable is then taken back out of the environment (child processes are unaffected).
    No effect when libgomp is already loaded (torch imported first): it keeps its settings.
    torch imported afterwards shares this libgomp (same soname) and so its policy: its CPU ops
    then stop stalling under load too (20 x ([50k, 21] @ [21, 3] + elementwise), load 2.8:
    470 -> 39 ms; spinning OpenMP threads on an oversubscribed machine wait on descheduled ones).
    """
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return ctypes.CDLL(str(path))
    os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        return ctypes.CDLL(str(path))
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


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
                try:
                    _build(path)
                except OSError:
                    # The cache directory cannot be made or written (a read-only home, a
                    # sandbox): build under the temp directory. Compiler failures are
                    # NativeUnavailable, not OSError, and are not retried.
                    path = Path(tempfile.gettempdir()) / f"ths-native-{os.getuid()}" / path.name
                    if not path.exists():
                        _build(path)
            lib = _load_passive(path)
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
        lib = load_library()
    except NativeUnavailable as exc:
        print(f"native kernels unavailable: {exc}", file=sys.stderr)
        return 1
    path = {16: "AVX-512", 8: "AVX2"}.get(lib.ths_simd_width(), "portable")
    print(f"native kernels: {library_path()} ({path} raster)", file=sys.stderr)
    return 0
