"""Head import: portraits and 3DGS .ply files become rigged Gaussian heads; heads and MPI folders
become rigged MPI heads.

Studio glue (it combines models.heads/models.face with the renderers, which may not import each
other). Qt-free; heavy imports happen inside the functions.

- :func:`import_portrait`: an image with a face -> ``models.heads.portrait.portrait_head``.
- :func:`import_ply`: a 3DGS .ply/.splat head -> rendered from the front, face landmarks found
  on the render, the 21 keypoints unprojected onto the splat surface (a depth render: the
  Gaussians' camera depth composited like colour), rigged by smooth weights around them.
- :func:`head_mpi`: a rigged head (any frame of motion) baked into an MPI from a frontal camera.
- :func:`bake_mpi_head`: a rigged Gaussian head's rest pose baked into a rigged MPI head
  (``models.heads.RiggedMPIHead``), keypoints carried over.
- :func:`check_mpi_folder`: an MPI head folder (per-plane RGBA PNGs + ``mpi.json``, see
  docs/formats.md) read and checked, with one clear line for a bad folder;
  :func:`mpi_head_from_mpi` rigs it: keypoints from the face landmarker on its composited front
  view, unprojected at its depth (the machinery of the .ply import).
- :func:`deformed_mpi`: a rigged MPI head driven by one frame of motion, as a ``renderers.MPI``.
- :func:`import_head`: any of these by input type; images and .ply/.splat are written
  atomically to a ``.thead`` file (Gaussian, or baked to MPI with ``kind="mpi"``), MPI folders
  to an MPI ``.thead`` or a checked copy (a folder). A generator yielding progress lines (the
  CLI prints them, a worker shows them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.face import FaceLandmarker
    from models.heads import RiggedGaussianHead, RiggedMPIHead
    from models.heads.mpi_head import MPIArrays
    from renderers import MPI, Camera, GaussianCloud
    from renderers.mpi import ImPortraitMPI

__all__ = [
    "IMAGE_SUFFIXES",
    "PLY_SUFFIXES",
    "HeadImportError",
    "ImportedHead",
    "bake_mpi_head",
    "check_mpi_folder",
    "deformed_mpi",
    "describe_mpi",
    "head_mpi",
    "import_head",
    "import_ply",
    "import_portrait",
    "mpi_arrays_to_mpi",
    "mpi_camera",
    "mpi_front_view",
    "mpi_head_from_mpi",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PLY_SUFFIXES = (".ply", ".splat")
_FRONT_FOV = 30.0
_FRONT_SIZE = 512


class HeadImportError(ValueError):
    """An input cannot become a head (unreadable, no face, unknown type); one-line message."""


@dataclass
class ImportedHead:
    """An imported head and the notes for the user (several faces, resampling, ...)."""

    head: RiggedGaussianHead | RiggedMPIHead
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ portraits
def import_portrait(
    source: str | os.PathLike | np.ndarray,
    *,
    name: str | None = None,
    landmarker: FaceLandmarker | None = None,
    face_px: int = 160,
) -> ImportedHead:
    """A rigged 2.5D head from a portrait image (path or array; see
    ``models.heads.portrait.portrait_head``). Raises HeadImportError for unusable images and
    ``models.face.FaceModelsMissingError`` when the face models are not installed."""
    from models.heads.portrait import PortraitImportError, portrait_head

    if name is None:
        name = Path(source).stem if isinstance(source, str | os.PathLike) else "portrait"
    try:
        res = portrait_head(source, landmarker=landmarker, name=name, face_px=face_px)
    except PortraitImportError as exc:
        where = f"{Path(source).name}: " if isinstance(source, str | os.PathLike) else ""
        raise HeadImportError(f"{where}{exc}") from exc
    return ImportedHead(res.head, res.notes)


# ------------------------------------------------------------------------------ MPIs
def mpi_camera(
    head: RiggedGaussianHead, distance: float = 0.6, width: int = 512, height: int = 512,
    fov_y_deg: float = 30.0,
) -> Camera:  # fmt: skip
    """The frontal camera of a head's MPI: ``distance`` metres in front of the keypoint origin
    (the head's centre, along the head's +z), looking at it."""
    from renderers import Camera

    centre = np.asarray(head.kp_to_world[:3, 3], dtype=np.float64)
    eye = centre + np.array([0.0, 0.0, float(distance)])
    return Camera.look_at(eye, centre, fov_y_deg=fov_y_deg, width=width, height=height)


def head_mpi(
    head: RiggedGaussianHead,
    frame: np.ndarray | None = None,
    *,
    camera: Camera | None = None,
    distance: float = 0.6,
    width: int = 512,
    height: int = 512,
    num_planes: int = 24,
    backend: str = "auto",
) -> MPI:
    """The head driven by ``frame`` (motion channels; None = rest) baked into an MPI.

    camera: the MPI's reference camera (default :func:`mpi_camera` at ``distance``); the planes
    follow IM-Portrait around the head centre's distance from it. Raises ValueError for bad
    channels or a camera too close to the head.
    """
    from renderers.bake import bake_mpi
    from studio.heads import arrays_to_cloud

    cam = camera if camera is not None else mpi_camera(head, distance, width, height)
    arrays = head.rest if frame is None else head.deform(frame)
    cloud = arrays_to_cloud(arrays, {"name": head.name})
    w2c = np.asarray(cam.world_to_camera, dtype=np.float64)
    r = float(w2c[2, :3] @ head.kp_to_world[:3, 3] + w2c[2, 3])
    return bake_mpi(cloud, cam, distance=r, num_planes=num_planes, backend=backend)


def bake_mpi_head(
    head: RiggedGaussianHead,
    *,
    distance: float = 0.6,
    width: int = 512,
    height: int = 512,
    num_planes: int = 24,
    backend: str = "auto",
    name: str | None = None,
) -> RiggedMPIHead:
    """The head's rest pose baked into a rigged MPI head (:func:`head_mpi` from the frontal
    :func:`mpi_camera`, IM-Portrait's plane spacing, 8-bit planes); the canonical keypoints,
    ``kp_to_world``, pivot and eye width carry over. Raises ValueError for a camera too close."""
    from models.heads import MPIRigParams, RiggedMPIHead

    cam = mpi_camera(head, distance, width, height)
    mpi = head_mpi(head, camera=cam, num_planes=num_planes, backend=backend)
    planes = _uint8_planes(mpi)
    rig = MPIRigParams(
        pivot=head.rig.pivot,
        eye_width=head.rig.eye_width,
        eye_radius=head.rig.eye_radius,
        lid_travel_upper=head.rig.lid_travel_upper,
        lid_travel_lower=head.rig.lid_travel_lower,
    )
    return RiggedMPIHead(
        name=name or head.name,
        planes=planes,
        depths=mpi.depths,
        intrinsics=np.array([cam.fx, cam.fy, cam.cx, cam.cy]),
        world_to_camera=cam.world_to_camera,
        keypoints=head.keypoints,
        kp_to_world=head.kp_to_world,
        rig=rig,
        metadata={
            "generator": "studio.head_import.bake_mpi_head",
            "source_head": head.name,
            "source_metadata": _jsonable(head.metadata),
        },
    )


def _uint8_planes(mpi: MPI) -> np.ndarray:
    """The MPI's straight planes [D, H, W, 4] as uint8 (rounded; uint8 planes as they are)."""
    if mpi.rgba.dtype == np.uint8:
        return mpi.rgba
    return np.round(np.clip(mpi.rgba, 0.0, 1.0) * 255.0).astype(np.uint8)


def mpi_arrays_to_mpi(arrays: MPIArrays) -> MPI:
    """A ``renderers.MPI`` from one frame of a rigged MPI head (its planes shared, uint8 or
    float32, not converted). Raises ValueError for inconsistent arrays."""
    from renderers import MPI, Camera

    fx, fy, cx, cy = (float(x) for x in arrays.intrinsics)
    cam = Camera(fx, fy, cx, cy, arrays.width, arrays.height, arrays.world_to_camera)
    return MPI(arrays.rgba, arrays.depths, cam)


def deformed_mpi(head: RiggedMPIHead, values: np.ndarray) -> MPI:
    """A rigged MPI head driven by one frame of motion channels ``values [len(CHANNELS)]``, as
    a ``renderers.MPI`` (what the renderers draw). Raises ValueError like ``head.deform``."""
    return mpi_arrays_to_mpi(head.deform(values))


def mpi_front_view(mpi: MPI) -> tuple[np.ndarray, np.ndarray]:
    """The MPI composited from its own camera, front to back: (straight colour over mid grey
    [H, W, 3] float32, depth [H, W] float64 metres: the planes' depths weighted by their
    visible alpha, NaN where less than half covered)."""
    h, w = mpi.height, mpi.width
    rgb = np.zeros((h, w, 3), np.float32)
    trans = np.ones((h, w), np.float32)
    zsum = np.zeros((h, w), np.float64)
    for plane, z in zip(mpi.float_rgba(), mpi.depths, strict=True):  # plane 0 nearest
        vis = trans * plane[..., 3]
        rgb += vis[..., None] * plane[..., :3]
        zsum += vis * float(z)
        trans *= 1.0 - plane[..., 3]
    cover = 1.0 - trans
    rgb += trans[..., None] * np.float32(0.5)
    depth = np.where(cover > 0.5, zsum / np.maximum(cover, 1e-6), np.nan)
    return rgb, depth


def mpi_head_from_mpi(
    mpi: MPI | ImPortraitMPI,
    *,
    name: str = "mpi head",
    landmarker: FaceLandmarker | None = None,
    source: str | None = None,
) -> tuple[RiggedMPIHead, list[str]]:
    """A rigged MPI head from a plain MPI (e.g. a checked MPI folder): the face landmarker runs
    on the MPI's composited front view and the 21 keypoints are unprojected at the view's depth
    (as for .ply heads); the head frame faces the MPI camera. Returns (head, notes). Raises
    HeadImportError when no plausible face is found."""
    from models.face import FaceLandmarker
    from models.heads import MPIRigParams, RiggedMPIHead
    from renderers.mpi import as_mpi

    mpi = as_mpi(mpi)
    cam = mpi.camera
    rgb, depth = mpi_front_view(mpi)
    lmk = landmarker if landmarker is not None else FaceLandmarker()
    face = _find_face(rgb, lmk)
    if face is None:
        raise HeadImportError(
            f"{name}: no plausible face found in the MPI's front view; an MPI head needs a face "
            "looking at the MPI camera"
        )
    lm, n_faces = face
    notes = [f"{n_faces} faces found in the front view; using the largest"] if n_faces > 1 else []
    anchors, pupils = _face_anchors(lm, depth, cam)
    # The head's RUB axes in the world: the camera's (OpenCV RDF) axes with y and z flipped.
    axes = np.asarray(cam.camera_to_world, dtype=np.float64)[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    try:
        kp_to_world, x_c, s, eye_mid = _keypoint_frame(anchors, pupils, axes)
    except ValueError as exc:
        raise HeadImportError(f"{name}: {exc}") from None
    planes = _uint8_planes(mpi)
    rig = MPIRigParams(
        pivot=eye_mid + s * axes @ np.array([0.0, -0.05, -0.1]),  # top of the neck (as .ply)
        eye_width=0.03 * s,
    )
    head = RiggedMPIHead(
        name=name,
        planes=planes,
        depths=mpi.depths,
        intrinsics=np.array([cam.fx, cam.fy, cam.cx, cam.cy]),
        world_to_camera=cam.world_to_camera,
        keypoints=x_c,
        kp_to_world=kp_to_world,
        rig=rig,
        metadata={
            "generator": "studio.head_import.mpi_head_from_mpi",
            "source": source or name,
            "keypoints": "placed automatically from face landmarks on the composited front view",
            "head_units_per_metre": s,
        },
    )
    return head, notes


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[str(k)] = v
        elif isinstance(v, list | tuple) and all(isinstance(x, str | int | float) for x in v):
            out[str(k)] = list(v)
    return out


# ------------------------------------------------------------------------------ .ply heads
def _front_camera(cloud: GaussianCloud) -> Camera:
    """A camera in front of the cloud (+z) framing its bounding box."""
    from renderers import Camera

    lo, hi = cloud.bounds()
    centre = (lo + hi) / 2.0
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-6))
    dist = 0.6 * extent / np.tan(np.radians(_FRONT_FOV / 2)) + (hi[2] - centre[2])
    eye = centre + np.array([0.0, 0.0, dist])
    return Camera.look_at(eye, centre, fov_y_deg=_FRONT_FOV, width=_FRONT_SIZE, height=_FRONT_SIZE)


def _depth_image(cloud: GaussianCloud, camera: Camera) -> np.ndarray:
    """Camera depth [H, W] (NaN where nothing is drawn): the Gaussians' camera z composited like
    colour (8 bits over the cloud's depth range) and divided by the coverage."""
    from renderers import GaussianCloud
    from renderers.render import render

    w2c = np.asarray(camera.world_to_camera, dtype=np.float64)
    z = cloud.means.astype(np.float64) @ w2c[2, :3] + w2c[2, 3]
    lo, hi = float(z.min()), float(z.max())
    t = (z - lo) / max(hi - lo, 1e-9)
    depth_cloud = GaussianCloud.from_colors(
        cloud.means, cloud.quats, cloud.scales, cloud.opacities, np.repeat(t[:, None], 3, 1)
    )
    img = render(depth_cloud, camera, backend="auto")[0]
    alpha = img[..., 3]
    val = img[..., :3].mean(-1) / np.maximum(alpha, 1e-6)
    return np.where(alpha > 0.5, lo + val * (hi - lo), np.nan)


def import_ply(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    landmarker: FaceLandmarker | None = None,
    axes: str | None = None,
) -> ImportedHead:
    """A rigged head from a 3DGS .ply/.splat file (module docstring).

    The file is read in our RUB frame (``axes`` as in renderers.formats.read_ply); when no face
    is found in its +z view, the other common convention (y and z flipped) is tried. Keypoints
    are stored in the head file and can be corrected later. Raises HeadImportError for an
    unreadable file or when no plausible face is found.
    """
    from models.face import FaceLandmarker
    from models.heads import RiggedGaussianHead, RigParams
    from models.heads.portrait import KP_SCALE, keypoint_skin_weights
    from models.heads.rig import PART_INDEX
    from renderers.formats import FormatError, load_gaussians
    from renderers.render import render

    path = Path(path)
    try:
        cloud = load_gaussians(path, axes=axes)
    except (FormatError, OSError) as exc:
        raise HeadImportError(f"{path.name}: {exc}") from exc
    if len(cloud) < 100:
        raise HeadImportError(f"{path.name}: only {len(cloud)} Gaussians; not a head")
    lmk = landmarker if landmarker is not None else FaceLandmarker()
    notes: list[str] = []
    found = None
    for label, candidate in (("as stored", cloud), ("with y and z flipped", cloud.flip_yz())):
        cam = _front_camera(candidate)
        img = render(candidate, cam, backend="auto", background=(0.5, 0.5, 0.5))[0]
        face = _find_face(img[..., :3], lmk)
        if face is not None:
            found = (label, candidate, cam, *face)
            break
    if found is None:
        raise HeadImportError(
            f"{path.name}: no plausible face found in a front view of the splats (the face must "
            "look along +z, or -z in OpenCV axes); place the keypoints in the viewport instead"
        )
    label, cloud, cam, lm, n_faces = found
    if label != "as stored":
        notes.append(f"face found {label}: the head was turned to face +z")
    if n_faces > 1:
        notes.append(f"{n_faces} faces found in the front view; using the largest")
    depth = _depth_image(cloud, cam)
    anchors, pupils = _face_anchors(lm, depth, cam)
    try:
        kp_to_world, x_c, s, eye_mid = _keypoint_frame(anchors, pupils, np.eye(3))
    except ValueError as exc:
        raise HeadImportError(f"{path.name}: {exc}") from None

    # Rig weights in the head's own units (s per metre).
    p = cloud.means.astype(np.float64)
    mouth_y = 0.5 * (anchors[6, 1] + anchors[17, 1])
    mouth_x = 0.5 * (anchors[14, 0] + anchors[20, 0])
    mouth_hw = 0.5 * abs(anchors[20, 0] - anchors[14, 0])
    hinge = eye_mid + s * np.array([0.0, -0.014, -0.086])
    du = np.abs(p[:, 0] - mouth_x)
    below = mouth_y - p[:, 1]
    band = s * (0.003 + 0.02 * np.clip((du - mouth_hw) / (0.02 * s), 0, 1))
    jaw = _smoothstep(-0.0005 * s, band, below)
    jaw *= 1.0 - _smoothstep(mouth_hw + 0.012 * s, mouth_hw + 0.04 * s, du)
    jaw *= 1.0 - _smoothstep(0.0, 0.02 * s, anchors[8, 1] - p[:, 1])
    jaw *= _smoothstep(hinge[2], hinge[2] + 0.03 * s, p[:, 2])  # the front of the head only
    pose = 1.0 - _smoothstep(0.005 * s, 0.09 * s, anchors[8, 1] - p[:, 1])
    active = np.ones(len(cloud))
    skin_index, skin_weight = keypoint_skin_weights(p, jaw, anchors, active, radius_scale=s)
    k19 = anchors[19]
    rig = RigParams(
        eye_centers=pupils - s * np.array([0.0, 0.0, 0.0165]),
        eye_radius=0.0165 * s,
        eye_width=0.03 * s,
        lid_travel_upper=0.045,
        lid_travel_lower=0.02,
        jaw_hinge=hinge,
        jaw_gain=float(KP_SCALE * s / np.hypot(k19[1] - hinge[1], k19[2] - hinge[2])),
        pivot=eye_mid + s * np.array([0.0, -0.05, -0.1]),
    )
    n = len(cloud)
    head = RiggedGaussianHead(
        name=name or path.stem,
        means=cloud.means,
        quats=cloud.quats / np.linalg.norm(cloud.quats, axis=1, keepdims=True),
        scales=cloud.scales,
        opacities=cloud.opacities,
        sh=cloud.sh,
        parts=np.full(n, PART_INDEX["skin"], np.uint8),
        keypoints=x_c,
        kp_to_world=kp_to_world,
        skin_index=skin_index,
        skin_weight=skin_weight,
        jaw_weight=jaw.astype(np.float32),
        lid_angle=np.zeros(n, np.float32),
        pose_weight=pose.astype(np.float32),
        rig=rig,
        metadata={
            "generator": "studio.head_import.import_ply",
            "source": str(path),
            "keypoints": "placed automatically from face landmarks on a front render",
            "head_units_per_metre": s,
        },
    )
    return ImportedHead(head, notes)


# ------------------------------------------------------------------- keypoints from a front view
def _find_face(rgb: np.ndarray, lmk: FaceLandmarker) -> tuple | None:
    """(landmarks, number of faces) of the largest face in a front view [H, W, 3] (float in
    [0, 1]), or None when there is no plausible face."""
    rgb8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    dets = lmk.detect(rgb8)
    if not dets:
        return None
    lm = lmk.landmarks(rgb8, dets[0])
    if lm.presence < lmk.min_presence:
        return None
    return lm, len(dets)


def _face_anchors(lm, depth: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World points of the 21 keypoints [21, 3] and the two pupils [2, 3]: the landmarks'
    pixels unprojected at the front view's depth image ``depth [H, W]`` (NaN where empty)."""
    from models.face import keypoints_from_landmarks

    def surface(uv: np.ndarray) -> np.ndarray:
        """World points [K, 3] on the surface under pixels uv [K, 2]."""
        h, w = depth.shape
        out = np.empty((uv.shape[0], 3))
        for i, (u, v) in enumerate(uv):
            x, y = int(np.clip(u, 0, w - 1)), int(np.clip(v, 0, h - 1))
            r = 1
            while True:  # the nearest covered pixels (a keypoint may sit on an edge)
                win = depth[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
                if np.isfinite(win).any() or r > 16:
                    break
                r *= 2
            z = float(np.nanmedian(win)) if np.isfinite(win).any() else float(np.nanmedian(depth))
            out[i] = cam.unproject(np.array([[u, v]]), np.array([z]))[0]
        return out

    kp_uv = keypoints_from_landmarks(lm.points[:, :2])
    if lm.iris is not None:
        pupils_uv = lm.iris[:, 0, :]
    else:
        pupils_uv = np.stack([lm.points[[33, 133], :2].mean(0), lm.points[[362, 263], :2].mean(0)])
    return surface(kp_uv), surface(pupils_uv)


def _keypoint_frame(
    anchors: np.ndarray, pupils: np.ndarray, axes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(kp_to_world [4, 4], x_c [21, 3], s head units per metre of an average face, eye
    midpoint [3]) from the keypoints' and pupils' world points. ``axes`` [3, 3]: the head's RUB
    axes in world coordinates (identity for a head facing +z). Raises ValueError when the eyes
    are degenerate."""
    from models.heads.portrait import EYE_SURFACE_Z, INTER_PUPIL_M, KP_ORIGIN, KP_SCALE

    iod = float(np.linalg.norm(pupils[1] - pupils[0]))
    if not np.isfinite(iod) or iod <= 0:
        raise ValueError("the eyes found in the front view are degenerate")
    s = iod / INTER_PUPIL_M  # head units per metre of an average face
    eye_mid = pupils.mean(0)
    origin = eye_mid + s * axes @ (KP_ORIGIN - np.array([0.0, 0.0, EYE_SURFACE_Z]))
    kp_to_world = np.eye(4)
    kp_to_world[:3, :3] = KP_SCALE * s * axes @ np.diag([1.0, -1.0, -1.0])
    kp_to_world[:3, 3] = origin
    x_c = (anchors - origin) @ np.linalg.inv(kp_to_world[:3, :3]).T
    return kp_to_world, x_c, s, eye_mid


def _smoothstep(e0: float, e1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (np.asarray(e1) - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ------------------------------------------------------------------------ MPI folders
def check_mpi_folder(folder: str | os.PathLike) -> MPI | ImPortraitMPI:
    """Read the MPI head folder ``folder`` (layout "rgba" or "im-portrait", see
    renderers.formats.mpi_folder) and check it. Raises HeadImportError with one line naming
    the folder and the problem: not a folder, no ``mpi.json``, bad metadata, missing or extra
    plane files, planes of different sizes or not matching ``mpi.json``, bad depths."""
    from renderers.formats import FormatError
    from renderers.formats.mpi_folder import read_mpi_folder

    path = Path(folder)
    if not path.is_dir():
        raise HeadImportError(f"{path}: no such folder")
    try:
        mpi = read_mpi_folder(path)
    except (FormatError, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        reason = text[0] if text else type(exc).__name__
        # The reader names the folder (or a file in it) with its full path: keep it short.
        for prefix in (f"{path / 'mpi.json'}: ", f"{path}: "):
            if reason.startswith(prefix):
                reason = reason[len(prefix) :]
                break
        reason = reason.replace(f"{path}{os.sep}", "")
        raise HeadImportError(f"{path.name}: not a usable MPI head folder: {reason}") from None
    return mpi


def describe_mpi(mpi: MPI | ImPortraitMPI) -> str:
    """``"24 planes 512x512, 0.45-0.65 m"``: what an MPI head is, for messages."""
    depths = np.asarray(mpi.depths, dtype=np.float64)
    cam = mpi.camera
    return (
        f"{len(depths)} planes {cam.width}x{cam.height}, "
        f"{float(depths.min()):.2f}-{float(depths.max()):.2f} m"
    )


def _mpi_bit_depth(folder: Path) -> int:
    import json

    try:
        depth = json.loads((folder / "mpi.json").read_text(encoding="utf-8")).get("bit_depth", 8)
    except (OSError, ValueError, AttributeError):
        return 8
    return depth if depth in (8, 16) else 8


def _copy_mpi(mpi: MPI | ImPortraitMPI, dst: Path, bit_depth: int) -> None:
    """Write ``mpi`` to the folder ``dst`` atomically: into a temporary sibling, then renamed
    (an existing ``dst`` is replaced only once the new folder is complete)."""
    from renderers.formats.mpi_folder import write_mpi_folder

    tmp = dst.with_name(f".{dst.name}.part-{os.getpid()}")
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_mpi_folder(tmp, mpi, bit_depth=bit_depth)
        if dst.exists():
            os.replace(dst, old)
        os.replace(tmp, dst)
    except OSError as exc:
        if old.exists() and not dst.exists():
            os.replace(old, dst)  # put the previous folder back
        raise HeadImportError(f"cannot write {dst}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _check_output_file(dst: Path, overwrite: bool) -> None:
    if dst.exists() and not overwrite:
        raise HeadImportError(f"{dst} exists (use --force to overwrite)")
    if not dst.parent.is_dir():
        raise HeadImportError(f"{dst.parent}: no such folder for the output")


def _import_mpi_folder(
    src: Path,
    dst: Path,
    overwrite: bool,
    landmarker: FaceLandmarker | None = None,
    result: list[ImportedHead] | None = None,
) -> Iterator[str]:
    yield f"reading MPI folder {src.name}"
    mpi = check_mpi_folder(src)  # a bad folder is reported before any output problem
    yield f"MPI head {src.name}: {describe_mpi(mpi)}"
    if dst.suffix.lower() == ".thead":
        _check_output_file(dst, overwrite)
        yield "placing keypoints: face landmarks on the composited front view"
        head, notes = mpi_head_from_mpi(mpi, name=src.name, landmarker=landmarker, source=str(src))
        for note in notes:
            yield f"note: {note}"
        from models.heads import save_head

        save_head(head, dst)
        if result is not None:
            result.append(ImportedHead(head, notes))
        yield f"wrote {dst}"
        return
    if dst.resolve() == src.resolve():
        raise HeadImportError(f"{dst}: the output is the input folder")
    if dst.exists() and not overwrite:
        raise HeadImportError(f"{dst} exists (use --force to overwrite)")
    if dst.exists() and not (dst / "mpi.json").is_file():
        raise HeadImportError(f"{dst} exists and is not an MPI folder; not overwriting it")
    if not dst.parent.is_dir():
        raise HeadImportError(f"{dst.parent}: no such folder for the output")
    _copy_mpi(mpi, dst, _mpi_bit_depth(src))
    yield f"wrote {dst}"


# ------------------------------------------------------------------------------ one call
def import_head(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    landmarker: FaceLandmarker | None = None,
    result: list[ImportedHead] | None = None,
    kind: str = "gaussian",
) -> Iterator[str]:
    """Import ``source`` and write the head to ``out``.

    - an image or a .ply/.splat -> a rigged Gaussian head in the .thead ``out``; with
      ``kind="mpi"`` its rest pose baked into a rigged MPI head instead (:func:`bake_mpi_head`);
    - a .thead -> checked and written again (with ``kind="mpi"``: a Gaussian head baked);
    - an MPI head folder -> checked (:func:`check_mpi_folder`), then a rigged MPI head in the
      .thead ``out`` (keypoints from the face landmarker on its front view,
      :func:`mpi_head_from_mpi`), or, when ``out`` is not a .thead, a checked copy of the folder.

    A generator: each yielded string is a progress line; the output is written atomically at
    the end (nothing is written when anything fails). ``result``, when given, receives the
    ImportedHead (not for folder copies). Raises HeadImportError for an unknown input type or
    kind, a bad MPI folder, an existing output without ``overwrite``, and the errors of the
    importers; HeadFileError when writing a .thead fails.
    """
    from models.heads import RiggedMPIHead, save_head

    if kind not in ("gaussian", "mpi"):
        raise HeadImportError(f"unknown head kind {kind!r} (expected 'gaussian' or 'mpi')")
    src, dst = Path(source), Path(out)
    if src.is_dir():  # an MPI already: ``kind`` does not apply, ``out`` picks file or copy
        yield from _import_mpi_folder(src, dst, overwrite, landmarker, result)
        return
    if not src.is_file():
        raise HeadImportError(f"{src}: no such file")
    if dst.suffix.lower() != ".thead":
        raise HeadImportError(f"{dst}: the output must be a .thead head file")
    _check_output_file(dst, overwrite)
    suffix = src.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        yield f"reading portrait {src.name}"
        if landmarker is None:
            from models.face import FaceLandmarker

            landmarker = FaceLandmarker()
        yield "finding the face, matting, estimating depth, building Gaussians"
        imported = import_portrait(src, landmarker=landmarker)
    elif suffix in PLY_SUFFIXES:
        yield f"reading Gaussians {src.name}"
        yield "rendering the front view and placing keypoints"
        imported = import_ply(src, landmarker=landmarker)
    elif suffix == ".thead":  # a rigged head already: checked, and baked with kind="mpi"
        from models.heads import load_head

        yield f"reading head {src.name}"
        imported = ImportedHead(load_head(src))
    else:
        known = ", ".join((*IMAGE_SUFFIXES, *PLY_SUFFIXES, ".thead"))
        raise HeadImportError(
            f"{src.name}: unknown input type {suffix!r} (expected {known}, or an MPI folder)"
        )
    for note in imported.notes:
        yield f"note: {note}"
    if isinstance(imported.head, RiggedMPIHead):
        yield f"rigged MPI head {imported.head.name!r}: {imported.head.num_planes} planes"
    else:
        yield f"rigged head {imported.head.name!r}: {len(imported.head)} Gaussians"
    if kind == "mpi" and not isinstance(imported.head, RiggedMPIHead):
        yield "baking the rest pose into 24 MPI planes"
        mpi_head = bake_mpi_head(imported.head)
        imported = ImportedHead(mpi_head, imported.notes)
        yield f"MPI head: {mpi_head.num_planes} planes {mpi_head.width}x{mpi_head.height}"
    save_head(imported.head, dst)
    if result is not None:
        result.append(imported)
    yield f"wrote {dst}"
