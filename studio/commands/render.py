"""``talking-head-studio render ASSET --out IMAGE.png [...]``: one still, mono or stereo, headless.

ASSET is a Gaussian file (.ply, .splat), an MPI folder, a head file (.thead: a Gaussian or an
MPI head) or a project (.ths, with --frame N). Head files and projects accept motion overrides:
``--set yaw=20 --set exp_19_y=0.05``; an MPI head is deformed by its image-space rig
(models.heads.mpi_head) and rendered on the MPI path. The camera looks at the asset's centre
from --distance along the head's +z (in front of the face), turned by --yaw/--pitch; an MPI head
is framed by its rest pose, so a posed head turns inside a fixed view. --stereo writes a
side-by-side pair, left eye on the left.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a head, Gaussian file, MPI folder or project frame")
    p.add_argument("asset", type=Path, help=".ply, .splat, MPI folder, .thead or .ths")
    p.add_argument("--out", type=Path, required=True, help="image to write (.png)")
    p.add_argument("--width", type=int, default=512, help="image width per eye (default 512)")
    p.add_argument("--height", type=int, default=512, help="image height (default 512)")
    p.add_argument("--yaw", type=float, default=0.0, help="camera yaw in degrees (+: viewer right)")
    p.add_argument("--pitch", type=float, default=0.0, help="camera pitch in degrees (+: above)")
    p.add_argument(
        "--distance", type=float, default=None,
        help="camera distance in metres (default: frame the asset)",
    )  # fmt: skip
    p.add_argument("--fov", type=float, default=30.0, help="vertical field of view in degrees")
    p.add_argument("--stereo", action="store_true", help="side-by-side stereo pair")
    p.add_argument("--ipd", type=float, default=0.063, help="stereo baseline in metres")
    p.add_argument(
        "--convergence", type=float, default=None,
        help="zero-disparity distance in metres (default: the camera distance)",
    )  # fmt: skip
    p.add_argument(
        "--backend", choices=("auto", "gl", "cpu", "torch", "gsplat"), default="auto",
        help="gl: OpenGL (headless EGL); cpu: the native CPU splat rasteriser, no GL needed; "
        "torch: the slow exact reference; gsplat: CUDA",
    )  # fmt: skip
    p.add_argument("--background", default="0.08,0.08,0.1", help="R,G,B in 0..1")
    p.add_argument("--frame", type=int, default=0, help="project frame (for .ths)")
    p.add_argument(
        "--set", action="append", default=[], metavar="CHANNEL=VALUE",
        help="override a motion channel (head files and projects), e.g. yaw=20, exp_19_y=0.05",
    )  # fmt: skip


def parse_overrides(items: list[str]) -> dict[str, float]:
    """``["yaw=20", "exp_19_y=0.05"]`` -> {channel: value}; raises CliError for bad items."""
    from models.motion_space import CHANNEL_INDEX
    from studio.cli import CliError

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise CliError(f"--set {item!r}: expected CHANNEL=VALUE")
        if name not in CHANNEL_INDEX:
            raise CliError(f"--set {item!r}: unknown channel {name!r} (see docs/motion-space.md)")
        try:
            number = float(value)
        except ValueError:
            raise CliError(f"--set {item!r}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise CliError(f"--set {item!r}: the value must be finite")
        out[name] = number
    return out


def load_scene(asset: Path, frame: int, overrides: dict[str, float]):
    """The renderable scene of an asset: a GaussianCloud or an MPI (see the module docstring)."""
    return _load_scene(asset, frame, overrides)[0]


def _load_scene(asset: Path, frame: int, overrides: dict[str, float]):
    """(scene, the scene to frame the camera on): the rest MPI for a rigged MPI head."""
    from studio.cli import CliError

    if not asset.exists():
        raise CliError(f"{asset}: no such file or folder")
    if asset.is_dir():
        from renderers.formats import read_mpi_folder

        if overrides:
            raise CliError("--set applies to head files and projects, not MPI folders")
        mpi = read_mpi_folder(asset)
        return mpi, mpi
    suffix = asset.suffix.lower()
    if suffix in (".ply", ".splat"):
        from renderers.formats import load_gaussians

        if overrides:
            raise CliError(f"--set applies to head files and projects, not {suffix} files")
        cloud = load_gaussians(asset)
        return cloud, cloud
    if suffix in (".thead", ".ths"):
        from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
        from studio import heads

        if suffix == ".thead":
            head = heads.resolve_any_head(str(asset))
            values = CHANNEL_DEFAULTS.copy()
        else:
            from studio.document import load_project

            project = load_project(asset)
            if not 0 <= frame < project.duration:
                last = project.duration - 1
                raise CliError(f"--frame {frame} is outside the project (0..{last})")
            if project.head is not None and project.head.kind == "mpi":
                if overrides:
                    raise CliError("--set does not apply to a project whose head is an MPI")
                mpi = heads.resolve_mpi(project, asset)
                return mpi, mpi
            head = (
                heads.resolve_any_head(project.head, project.assets)
                if project.head is not None
                else heads.project_head(project)
            )
            values = project.evaluate_frame(frame).copy()
        for name, value in overrides.items():
            values[CHANNEL_INDEX[name]] = value
        from models.heads import RiggedMPIHead

        if isinstance(head, RiggedMPIHead):
            from studio.head_import import deformed_mpi, mpi_arrays_to_mpi

            return deformed_mpi(head, values), mpi_arrays_to_mpi(head.rest)
        cloud = heads.deformed_cloud(head, values)
        return cloud, cloud
    raise CliError(
        f"{asset}: unknown asset type {suffix!r} (.ply, .splat, MPI folder, .thead, .ths)"
    )


def scene_extent(scene) -> tuple[np.ndarray, float]:
    """Centre [3] and radius (metres) of what a scene shows: a cloud's bounding box, or an MPI's
    mid-depth plane seen by its own camera."""
    from renderers import GaussianCloud

    if isinstance(scene, GaussianCloud):
        lo, hi = scene.bounds()
        return (lo + hi) / 2.0, float(np.linalg.norm(hi - lo)) / 2.0
    mpi = scene.to_mpi()
    ref = mpi.camera
    mid = float(np.sqrt(mpi.depths[0] * mpi.depths[-1]))
    return ref.position + mid * ref.forward, mid * ref.width / (2.0 * ref.fx)


def frame_camera(scene, args: argparse.Namespace):
    """The centre camera and its distance to the scene's centre: looking at the centre from the
    front (+z), turned by yaw and pitch; the distance fits the scene in the field of view unless
    given."""
    from renderers import Camera

    center, radius = scene_extent(scene)
    distance = args.distance
    if distance is None:
        distance = max(radius / math.sin(math.radians(args.fov) / 2.0) * 0.95, 1e-3)
    if distance <= 0:
        from studio.cli import CliError

        raise CliError(f"--distance must be positive, got {distance}")
    camera = Camera.orbit(center, distance, args.yaw, args.pitch, args.fov, args.width, args.height)
    return camera, distance


def run(args: argparse.Namespace) -> int:
    from studio.cli import CliError

    for name in ("width", "height"):
        if not 8 <= getattr(args, name) <= 8192:
            raise CliError(f"--{name} must be between 8 and 8192, got {getattr(args, name)}")
    try:
        background = tuple(float(x) for x in args.background.split(","))
    except ValueError:
        background = ()
    if len(background) != 3 or not all(0.0 <= x <= 1.0 for x in background):
        raise CliError(f"--background {args.background!r}: expected R,G,B with values in 0..1")
    if args.out.suffix.lower() != ".png":
        raise CliError(f"{args.out}: the output must be a .png image")

    scene, framing = _load_scene(args.asset, args.frame, parse_overrides(args.set))
    center, distance = frame_camera(framing, args)
    if args.stereo:
        from renderers import StereoRig

        convergence = args.convergence or distance
        cameras = list(StereoRig(ipd=args.ipd, convergence=convergence).cameras(center))
    else:
        cameras = [center]

    from renderers.render import render

    # "auto" uses OpenGL (EGL, headless) when a context can be made, else the torch reference.
    images = render(scene, cameras, backend=args.backend, background=background)
    image = np.concatenate(list(images), axis=1) if len(images) > 1 else images[0]
    write_png(args.out, image)
    eyes = "stereo side-by-side" if args.stereo else "mono"
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}, {eyes})")
    return 0


def write_png(path: Path, image: np.ndarray) -> None:
    """Write ``image [H, W, 4 or 3]`` float in [0, 1] as an 8-bit PNG (atomic)."""
    import os
    import tempfile

    import cv2

    rgb = np.clip(image[..., :3] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    fd, tmp = tempfile.mkstemp(prefix=".render-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
