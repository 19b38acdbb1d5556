"""Fetch the classic MediaPipe face models at SETUP time (never at run time).

    python -m models.face.fetch_models [--dest DIR] [--wheel PATH]

Downloads the mediapipe 0.10.21 wheel with pip (``pip download --no-deps``: nothing is
installed; mediapipe itself pins numpy<2 and is not a dependency), extracts the three Apache-2.0
TFLite models the face runtime needs plus the wheel's LICENSE into ``DIR`` (default
``resources/thirdparty/mediapipe``) and checks every file against the size and sha256 recorded
below. Idempotent: when all files are present and intact it does nothing (no pip call).
``--wheel`` uses an already downloaded wheel instead of pip (offline machines).

Exit status 0 on success, 1 on failure (message on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["DEFAULT_DEST", "MODEL_FILES", "FetchError", "fetch_models", "models_present"]

MEDIAPIPE_VERSION = "0.10.21"
SETUP_COMMAND = "python -m models.face.fetch_models"
DEFAULT_DEST = Path(__file__).resolve().parents[2] / "resources" / "thirdparty" / "mediapipe"

# name in DEST -> (path inside the wheel, size in bytes, sha256). The models are identical in every
# platform's wheel; the hashes pin exactly the files the runtime was written and tested against.
MODEL_FILES: dict[str, tuple[str, int, str]] = {
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        229_714,
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    "face_landmark.tflite": (
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        1_242_398,
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
    "iris_landmark.tflite": (
        "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        2_640_568,
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    ),
}
LICENSE_FILE = (
    "LICENSE",
    f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE",
    12_331,
    "8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8",
)
_ALL_FILES = {**MODEL_FILES, LICENSE_FILE[0]: LICENSE_FILE[1:]}

# mediapipe 0.10.21 publishes no manylinux_2_17 wheel; any platform's wheel holds the same
# models, so the first one pip can find is used (the sha256 check catches a different build).
_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_11_0_arm64", "win_amd64")


class FetchError(RuntimeError):
    """The models could not be obtained or did not match the recorded hashes."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _intact(path: Path, size: int, sha: str) -> bool:
    return path.is_file() and path.stat().st_size == size and _sha256(path) == sha


def models_present(dest: Path | str = DEFAULT_DEST) -> bool:
    """True when every model file and the LICENSE are in ``dest`` with the recorded sha256."""
    dest = Path(dest)
    return all(_intact(dest / name, size, sha) for name, (_, size, sha) in _ALL_FILES.items())


def _download_wheel(tmp: Path) -> Path:
    errors = []
    for platform in _PLATFORMS:
        cmd = [sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}",
               "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
               "--platform", platform, "-d", str(tmp), "-q"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(tmp.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0]
        errors.append(f"{platform}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    raise FetchError(f"pip could not download mediapipe=={MEDIAPIPE_VERSION}: " + "; ".join(errors))


def _extract(wheel: Path, dest: Path) -> None:
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise FetchError(f"not a readable wheel: {wheel} ({e})") from e
    with archive:
        names = set(archive.namelist())
        for name, (member, size, sha) in _ALL_FILES.items():
            target = dest / name
            if _intact(target, size, sha):
                continue
            if member not in names:
                raise FetchError(f"{wheel.name} has no {member}")
            tmp = target.with_name(f".{name}.part")
            with archive.open(member) as src, tmp.open("wb") as out:
                out.write(src.read())
            if not _intact(tmp, size, sha):
                tmp.unlink()
                raise FetchError(
                    f"{member} in {wheel.name} does not match the recorded size/sha256 "
                    f"(expected {size} bytes, {sha[:12]}...)"
                )
            os.replace(tmp, target)  # atomic: a half-written model is never left behind


def fetch_models(dest: Path | str = DEFAULT_DEST, wheel: Path | str | None = None) -> bool:
    """Make sure the face models are in ``dest``; returns True when anything was written.

    Raises FetchError when the wheel cannot be downloaded/read or a file's hash differs.
    """
    dest = Path(dest)
    if models_present(dest):
        return False
    dest.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        _extract(Path(wheel), dest)
    else:
        with tempfile.TemporaryDirectory(prefix="ths-mediapipe-") as tmp:
            _extract(_download_wheel(Path(tmp)), dest)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.face.fetch_models", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="target folder")
    parser.add_argument("--wheel", type=Path, help="use this mediapipe 0.10.21 wheel (no pip)")
    args = parser.parse_args(argv)
    try:
        wrote = fetch_models(args.dest, args.wheel)
    except FetchError as e:
        print(f"fetch_models: {e}", file=sys.stderr)
        return 1
    print(f"fetch_models: face models {'installed in' if wrote else 'already present in'} "
          f"{args.dest}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
