"""The rigged MPI head (models.heads.mpi_head) and its .thead kind, on a small drawn MPI face:
identity, jaw, eyelids, pose, the file round trip and one-line errors for damaged files."""

from __future__ import annotations

import io
import json
import weakref
import zipfile

import numpy as np
import pytest

from models.heads import (
    MAX_MPI_ANGLE,
    HeadFileError,
    MPIRigParams,
    RiggedMPIHead,
    load_head,
    save_head,
)
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, LIPS

SIZE = 192
SKIN = (0.85, 0.66, 0.55)
LOWER_LIP = (0.75, 0.15, 0.25)
UPPER_LIP = (0.80, 0.45, 0.45)
IRIS = (0.1, 0.3, 0.9)
SCLERA = (0.93, 0.92, 0.9)
PUPIL = (0.02, 0.02, 0.03)
SCLERA_RADII = np.array([0.21, 0.15])  # inter-ocular distances: inside the lid ellipse


def frame(**channels: float) -> np.ndarray:
    v = CHANNEL_DEFAULTS.copy()
    for name, value in channels.items():
        v[CHANNEL_INDEX[name]] = value
    return v


def _camera(head) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frontal baking camera 0.6 m in front of the keypoint origin: (intrinsics, w2c, depths)."""
    centre = head.kp_to_world[:3, 3]
    eye = centre + np.array([0.0, 0.0, 0.6])
    w2c = np.eye(4)
    w2c[:3, :3] = np.diag([1.0, -1.0, -1.0])  # RUB world -> RDF camera looking along -z
    w2c[:3, 3] = -w2c[:3, :3] @ eye
    f = 0.5 * SIZE / np.tan(np.radians(15.0))
    depths = 1.0 / np.linspace(1 / 0.45, 1 / 0.65, 24)
    return np.array([f, f, SIZE / 2, SIZE / 2]), w2c, depths


def _disc(img: np.ndarray, centre, radii, colour) -> None:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]] + 0.5
    inside = ((xx - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2 <= 1.0
    img[inside, :3] = colour
    img[inside, 3] = 1.0


def drawn_mpi_head(gaussian_head, dtype=np.uint8, sclera: bool = False) -> RiggedMPIHead:
    """A face drawn on the plane at the keypoints' depth of a 24-plane MPI, with the default
    head's keypoints: skin, a pink upper lip, a red lower lip and blue irises (with sclera: in
    white almonds, with black pupils)."""
    intr, w2c, depths = _camera(gaussian_head)
    rig = MPIRigParams(pivot=gaussian_head.rig.pivot, eye_width=gaussian_head.rig.eye_width)
    args = dict(
        name="drawn", depths=depths, intrinsics=intr, world_to_camera=w2c,
        keypoints=gaussian_head.keypoints, kp_to_world=gaussian_head.kp_to_world, rig=rig,
    )  # fmt: skip
    blank = RiggedMPIHead(planes=np.zeros((24, SIZE, SIZE, 4), np.float32), **args)
    uv, z = blank.project(blank.kp_to_world_points(blank.keypoints))
    plane = int(np.argmin(np.abs(depths - np.median(z))))
    img = np.zeros((SIZE, SIZE, 4), np.float32)
    iod = float(np.linalg.norm(uv[11] - uv[15]))
    centre = uv[[4, 8]].mean(0)
    _disc(img, centre, (1.1 * iod, 1.6 * iod), SKIN)
    lip_w = 0.5 * abs(uv[20, 0] - uv[14, 0])
    gap_y = 0.5 * (uv[6, 1] + uv[17, 1])
    _disc(img, (uv[6, 0], uv[6, 1]), (lip_w, gap_y - uv[6, 1]), UPPER_LIP)
    _disc(img, (uv[17, 0], uv[17, 1]), (lip_w, uv[17, 1] - gap_y), LOWER_LIP)
    for up, low in ((11, 13), (15, 16)):
        if sclera:
            _disc(img, uv[[up, low]].mean(0), SCLERA_RADII * iod, SCLERA)
        _disc(img, uv[[up, low]].mean(0), (0.12 * iod, 0.12 * iod), IRIS)
        if sclera:
            _disc(img, uv[[up, low]].mean(0), (0.05 * iod, 0.05 * iod), PUPIL)
    planes = np.zeros((24, SIZE, SIZE, 4), np.float32)
    planes[plane] = img
    if dtype == np.uint8:
        planes = np.round(planes * 255).astype(np.uint8)
    return RiggedMPIHead(planes=planes, metadata={"drawn": True}, **args)


def front(arrays) -> np.ndarray:
    """The MPI composited from its own camera over black [H, W, 3] (plane 0 nearest)."""
    rgba = arrays.float_rgba()
    out = np.zeros((*rgba.shape[1:3], 3), np.float32)
    trans = np.ones((*rgba.shape[1:3], 1), np.float32)
    for p in rgba:
        out += trans * p[..., 3:] * p[..., :3]
        trans *= 1.0 - p[..., 3:]
    return out


def _mask_of(img: np.ndarray, colour, tol: float = 0.06) -> np.ndarray:
    return np.all(np.abs(img - np.asarray(colour, np.float32)) < tol, axis=-1)


@pytest.fixture(scope="module")
def mpi_head(head) -> RiggedMPIHead:
    return drawn_mpi_head(head)


def test_zero_motion_is_the_identity(mpi_head):
    rest = mpi_head.deform(CHANNEL_DEFAULTS)
    assert rest.rgba is mpi_head.planes and not rest.rgba.flags.writeable
    assert rest.world_to_camera is mpi_head.world_to_camera and rest.depths is mpi_head.depths
    # Channels the rig does not read (intensity, emotion, the gaze's z, as in rig.py) leave it
    # the identity too.
    other = mpi_head.deform(
        frame(intensity=0.3, emotion_happy=1.0, eye_ball_2=0.2, eye_ball_5=-0.1)
    )
    assert other.rgba is mpi_head.planes
    # After a deformed frame, rest is still bit-exact (no state leaks between frames).
    mpi_head.deform(
        frame(exp_19_y=0.05, eye_open_r=0.0, exp_3_x=0.02, exp_6_z=-0.02, eye_ball_3=0.2, yaw=5)
    )
    np.testing.assert_array_equal(mpi_head.deform(CHANNEL_DEFAULTS).rgba, mpi_head.planes)
    with pytest.raises(ValueError, match="channels"):
        mpi_head.deform(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        mpi_head.deform(frame(exp_4_x=np.nan))


def test_jaw_open_darkens_the_mouth_and_lowers_the_lower_lip(mpi_head):
    jaw = 0.06
    rest, opened = front(mpi_head.rest), front(mpi_head.deform(frame(exp_19_y=jaw)))
    uv, z = mpi_head.project(mpi_head.kp_to_world_points(mpi_head.keypoints))
    gap_px = jaw * mpi_head.kp_scale * mpi_head.intrinsics[1] / (0.5 * (z[6] + z[17]))
    assert gap_px > 4.0
    # The lower lip (its red) moves down by about the jaw's delta; the upper lip stays.
    rows = np.arange(SIZE)[:, None]
    low_rest, low_open = _mask_of(rest, LOWER_LIP), _mask_of(opened, LOWER_LIP)
    shift = (rows * low_open).sum() / low_open.sum() - (rows * low_rest).sum() / low_rest.sum()
    assert shift == pytest.approx(gap_px, rel=0.3)
    up_rest, up_open = _mask_of(rest, UPPER_LIP), _mask_of(opened, UPPER_LIP)
    up_shift = (rows * up_open).sum() / up_open.sum() - (rows * up_rest).sum() / up_rest.sum()
    assert abs(up_shift) < 0.25 * gap_px  # only its edge near the corners stretches a little
    # Between the lips, just below the seam, the mouth is now dark.
    x, y = int(uv[17, 0] - 0.5), int(0.5 * (uv[6, 1] + uv[17, 1]) + gap_px / 2)
    patch_rest, patch_open = (
        rest[y - 1 : y + 2, x - 2 : x + 3],
        opened[y - 1 : y + 2, x - 2 : x + 3],
    )
    assert patch_open.mean() < 0.15 < patch_rest.mean()
    # The forehead and the eyes do not move.
    top = int(uv[4, 1])
    np.testing.assert_array_equal(opened[:top], rest[:top])


def test_eye_close_covers_the_iris_with_skin(mpi_head):
    rest = front(mpi_head.rest)
    closed = front(mpi_head.deform(frame(eye_open_r=0.0)))
    iris = _mask_of(rest, IRIS)
    right = iris & (np.arange(SIZE)[None, :] < SIZE // 2)
    left = iris & ~right
    assert right.sum() > 10 and left.sum() > 10
    # The right iris is gone under skin-coloured lid; the left eye is untouched.
    colours = closed[right]
    assert np.abs(colours - np.asarray(SKIN)).max(axis=1).mean() < 0.12
    assert not _mask_of(closed, IRIS)[right].any()
    np.testing.assert_array_equal(closed[left], rest[left])
    # Half open: the lid covers the top of the iris only.
    half = front(mpi_head.deform(frame(eye_open_r=0.5)))
    still_blue = _mask_of(half, IRIS) & right
    assert 0 < still_blue.sum() < right.sum()
    ys = np.nonzero(right)[0]
    assert np.nonzero(still_blue)[0].min() > ys.min()
    # The lid keypoint's own channel closes it as well (exp_11_y > 0 brings the lid down).
    lid = front(mpi_head.deform(frame(exp_11_y=mpi_head.rig.lid_travel_upper)))
    assert not _mask_of(lid, IRIS)[right].any()


def test_pose_moves_the_camera_like_the_gaussian_rig(mpi_head, head):
    v = frame(pitch=6.0, yaw=-9.0, roll=4.0, scale=1.1, tx=0.02, ty=-0.01)
    posed = mpi_head.deform(v)
    np.testing.assert_array_equal(posed.rgba, mpi_head.planes)  # the planes themselves stay
    np.testing.assert_allclose(posed.depths, 1.1 * mpi_head.depths)
    # A point on a plane, seen through the moved camera at the scaled depth, lands where the
    # Gaussian rig puts the same head point (here: the keypoints, exp = 0, same pivot).
    uv, z = mpi_head.project(mpi_head.kp_to_world_points(mpi_head.keypoints))
    fx, fy, cx, cy = mpi_head.intrinsics
    cam = np.stack([(uv[:, 0] - cx) / fx * z, (uv[:, 1] - cy) / fy * z, z], 1) * 1.1
    c2w = np.linalg.inv(posed.world_to_camera)
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    np.testing.assert_allclose(world, head.keypoints_world(v), atol=1e-9)
    # Pitch and yaw beyond the MPI's range are clamped.
    far = mpi_head.deform(frame(yaw=60.0)).world_to_camera
    np.testing.assert_array_equal(far, mpi_head.deform(frame(yaw=MAX_MPI_ANGLE)).world_to_camera)


def test_yaw_turns_the_rendered_head_to_the_image_left(mpi_head):
    pytest.importorskip("torch")
    from renderers import MPI, Camera
    from renderers.reference import render_mpi_reference

    fx, fy, cx, cy = mpi_head.intrinsics
    view = Camera(fx, fy, cx, cy, SIZE, SIZE, mpi_head.world_to_camera)

    def render(v):
        a = mpi_head.deform(v)
        cam = Camera(fx, fy, cx, cy, SIZE, SIZE, a.world_to_camera)
        img = np.asarray(render_mpi_reference(MPI(a.float_rgba(), a.depths, cam), view))
        return img[..., :3]

    def iris_x(img):
        m = _mask_of(img, IRIS, tol=0.12)
        return np.nonzero(m)[1].mean()

    rest, turned = render(CHANNEL_DEFAULTS), render(frame(yaw=10.0))
    # Positive yaw turns the face to the image's left (docs/motion-space.md): the eyes move by
    # about what the pose does to their keypoints.
    uv, _ = mpi_head.project(mpi_head.kp_to_world_points(mpi_head.keypoints))
    pivot = mpi_head.rig.pivot
    yaw = np.radians(10.0)
    rot = np.array([[np.cos(yaw), 0, -np.sin(yaw)], [0, 1, 0], [np.sin(yaw), 0, np.cos(yaw)]])
    eyes = mpi_head.kp_to_world_points(mpi_head.keypoints[[11, 15]])
    moved_uv, _ = mpi_head.project((eyes - pivot) @ rot.T + pivot)
    expected = float(moved_uv[:, 0].mean() - uv[[11, 15], 0].mean())
    assert expected < -3.0
    assert iris_x(turned) - iris_x(rest) == pytest.approx(expected, abs=1.5)


@pytest.fixture(scope="module")
def eyes_head(head) -> RiggedMPIHead:
    return drawn_mpi_head(head, sclera=True)


def _iris_centre(img: np.ndarray, head: RiggedMPIHead, eye: int) -> np.ndarray:
    """Centroid (x, y) of the pupil around one eye of a front view (0: the subject's right eye,
    on the image left); the pupil, unlike the iris' edge, is never clipped by the opening."""
    uv, _ = head.project(head.kp_to_world_points(head.keypoints))
    c = uv[[11, 13] if eye == 0 else [15, 16]].mean(0)
    x0, y0 = (c - 12).astype(int)
    win = img[y0 : y0 + 24, x0 : x0 + 24]
    # Darkness-weighted (sub-pixel: the resampled pupil's edge pixels count in part); the iris,
    # sclera and skin are all lighter than 0.25.
    w = np.clip((0.25 - win.mean(-1)) / 0.2, 0.0, 1.0)
    ys, xs = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([(w * xs).sum() / w.sum() + x0, (w * ys).sum() / w.sum() + y0])


def _gaussian_iris_shifts(head, balls: tuple[float, ...]) -> list[float]:
    """How far (pixels, +x image right) the Gaussian rig moves the right iris for each
    eye_ball_0 in balls: its eyeball parts rendered by the torch reference on a 32x32 crop of
    the drawn head's camera (same focal length and distance)."""
    from models.heads.rig import PART_INDEX
    from renderers import Camera
    from renderers.gaussians import GaussianCloud
    from renderers.reference import render_gaussians_reference

    intr, w2c, _ = _camera(head)
    eye = w2c[:3, :3] @ head.rig.eye_centers[0] + w2c[:3, 3]
    x0 = int(intr[0] * eye[0] / eye[2] + intr[2]) - 16
    y0 = int(intr[1] * eye[1] / eye[2] + intr[3]) - 16
    crop = Camera(intr[0], intr[1], intr[2] - x0, intr[3] - y0, 32, 32, w2c)
    ball_parts = np.isin(head.parts, [PART_INDEX["sclera_r"], PART_INDEX["iris_r"]])

    def centre(v):
        a = head.deform(v)
        cloud = GaussianCloud(*(x[ball_parts] for x in (a.means, a.quats, a.scales,
                                                        a.opacities, a.sh)))  # fmt: skip
        img = render_gaussians_reference(cloud, crop, background=(1.0, 1.0, 1.0))[..., :3]
        # iris: blue; pupil: near black (the sclera is grey, the background white)
        m = (img[..., 2] - img[..., 0] > 0.25) | (img.max(-1) < 0.12)
        return np.nonzero(m)[1].mean()

    rest = centre(CHANNEL_DEFAULTS)
    return [centre(frame(eye_ball_0=b)) - rest for b in balls]


def test_gaze_moves_the_iris_as_the_gaussian_rig_does(eyes_head, head):
    rest = front(eyes_head.rest)
    _, z = eyes_head.project(eyes_head.kp_to_world_points(eyes_head.keypoints))
    fx = eyes_head.intrinsics[0]
    ball = 0.1
    # The pupil moves by ball eye widths (rig.py's eyeball rotation), seen from z: f * dx / z.
    predicted = fx * ball * eyes_head.rig.eye_width / z[11]
    assert predicted > 1.5
    for sign in (1.0, -1.0):
        moved = front(eyes_head.deform(frame(eye_ball_0=sign * ball, eye_ball_3=sign * ball)))
        for eye in (0, 1):
            shift = _iris_centre(moved, eyes_head, eye) - _iris_centre(rest, eyes_head, eye)
            assert shift[0] == pytest.approx(sign * predicted, abs=0.25)
            assert abs(shift[1]) < 0.1
    # Each eye has its own channels; +y looks down.
    down = front(eyes_head.deform(frame(eye_ball_4=0.12)))
    np.testing.assert_array_equal(
        _iris_centre(down, eyes_head, 0), _iris_centre(rest, eyes_head, 0)
    )
    dy = (_iris_centre(down, eyes_head, 1) - _iris_centre(rest, eyes_head, 1))[1]
    assert dy == pytest.approx(fx * 0.12 * eyes_head.rig.eye_width / z[15], abs=0.25)
    # The Gaussian rig turns the eyeball the same way and by as much: the same channel value
    # looks the same way on a head and on its MPI.
    pytest.importorskip("torch")
    shifts = _gaussian_iris_shifts(head, (ball, -ball))
    assert shifts == pytest.approx([predicted, -predicted], abs=1.0)


def test_gaze_keeps_the_iris_inside_the_eye_opening(eyes_head):
    rest = front(eyes_head.rest)
    uv, _ = eyes_head.project(eyes_head.kp_to_world_points(eyes_head.keypoints))
    iod = float(np.linalg.norm(uv[11] - uv[15]))
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    almond = np.zeros((SIZE, SIZE), bool)
    for up, low in ((11, 13), (15, 16)):
        c = uv[[up, low]].mean(0)
        r = SCLERA_RADII * iod + 1.0  # one pixel of anti-aliasing
        almond |= ((xx - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 <= 1.0
    for bx, by in ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (0.4, 0.4), (-0.3, 0.3)):
        img = front(eyes_head.deform(frame(eye_ball_0=bx, eye_ball_1=by, eye_ball_3=bx,
                                           eye_ball_4=by)))  # fmt: skip
        # Only the eyes change, the iris never lands on skin, and the skin keeps its colour.
        changed = np.abs(img - rest).max(-1) > 1e-6
        assert changed.any() and not (changed & ~almond).any()
        assert not (_mask_of(img, IRIS, tol=0.2) & ~almond).any()
        # What the iris uncovers is sclera, not a hole or the old iris.
        assert np.abs(img[almond] - np.asarray(SCLERA)).max(-1).min() < 0.05
    # At the largest gaze (the eyeball turned by asin(0.95)) the iris reaches the corner.
    far = front(eyes_head.deform(frame(eye_ball_0=5.0)))
    np.testing.assert_array_equal(far, front(eyes_head.deform(frame(eye_ball_0=1.0))))
    # The lids close over a moved iris.
    shut = front(eyes_head.deform(frame(eye_ball_0=0.15, eye_open_r=0.0)))
    right = almond & (xx < SIZE / 2)
    assert not _mask_of(shut, IRIS, tol=0.2)[right].any()


def test_pout_moves_the_lips_not_the_eyes(mpi_head):
    rest = front(mpi_head.rest)
    uv, _ = mpi_head.project(mpi_head.kp_to_world_points(mpi_head.keypoints))
    pout = front(mpi_head.deform(frame(exp_6_z=-0.05, exp_17_z=-0.05)))
    diff = np.abs(pout - rest).max(-1)
    mouth = slice(int(uv[12, 1]) - 2, int(uv[8, 1]))
    assert diff[mouth].max() > 0.1
    # The lips come towards the camera: they grow about the principal point (the lower lip
    # is below it, so it moves down) ...
    rows = np.arange(SIZE)[:, None]
    lip_rest, lip_pout = _mask_of(rest, LOWER_LIP), _mask_of(pout, LOWER_LIP)
    dy = (rows * lip_pout).sum() / lip_pout.sum() - (rows * lip_rest).sum() / lip_rest.sum()
    assert dy > 0
    # ... and the eyes stay (a 20 px window around each; the field's tail there, hundredths of
    # a pixel, moves an iris edge pixel by a few levels of 255).
    for up, low in ((11, 13), (15, 16)):
        x, y = uv[[up, low]].mean(0).astype(int)
        assert diff[y - 10 : y + 10, x - 10 : x + 10].max() < 0.016
    # Turned, the pouted lips stand out: against the turned head without the pout they move
    # as a point in front of the face does (the planes cannot move content in depth).
    pytest.importorskip("torch")
    from renderers import MPI, Camera
    from renderers.reference import render_mpi_reference

    fx, fy, cx, cy = mpi_head.intrinsics
    view = Camera(fx, fy, cx, cy, SIZE, SIZE, mpi_head.world_to_camera)

    def lip_x(v):
        a = mpi_head.deform(v)
        cam = Camera(fx, fy, cx, cy, SIZE, SIZE, a.world_to_camera)
        img = np.asarray(render_mpi_reference(MPI(a.float_rgba(), a.depths, cam), view))
        m = _mask_of(img[..., :3], LOWER_LIP, tol=0.1)
        return np.nonzero(m)[1].mean()

    yaw = 20.0
    turned = frame(yaw=yaw)
    # The whole mouth forward (every lip keypoint: with only 6 and 17 the still corners and jaw
    # keypoint hold the lip's sides back).
    forward = {f"exp_{k}_z": -0.05 for k in LIPS}
    shift = lip_x(frame(yaw=yaw, **forward)) - lip_x(turned)
    # Expected: the lower lip's keypoint moved towards the camera by 0.05 units, turned with
    # the head (the planes ride the moved camera: world = posed^-1 @ baking) and seen by the
    # view, against the keypoint itself.
    bake = mpi_head.world_to_camera
    turn = np.linalg.inv(mpi_head.deform(turned).world_to_camera) @ bake
    kp = mpi_head.kp_to_world_points(mpi_head.keypoints[[17]])
    moved = mpi_head.kp_to_world_points(mpi_head.keypoints[[17]] + np.array([0.0, 0.0, -0.05]))

    def u(p):
        c = bake @ turn @ np.append(p[0], 1.0)
        return fx * c[0] / c[2]

    expected = u(moved) - u(kp)
    assert expected < -1.0
    assert shift == pytest.approx(expected, abs=0.5)


def test_float_planes_deform_too(head):
    h32 = drawn_mpi_head(head, dtype=np.float32)
    assert h32.planes.dtype == np.float32
    assert h32.deform(CHANNEL_DEFAULTS).rgba is h32.planes
    out = h32.deform(frame(exp_19_y=0.05, eye_open_l=0.0)).rgba
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    h8 = drawn_mpi_head(head)
    ref = h8.deform(frame(exp_19_y=0.05, eye_open_l=0.0)).float_rgba()
    assert np.abs(front_rgba(out) - front_rgba(ref)).mean() < 0.01


def front_rgba(rgba: np.ndarray) -> np.ndarray:
    class _A:
        def float_rgba(self):
            return rgba

    return front(_A())


# ------------------------------------------------------------------ fast path vs a reference


def layered_mpi_head(gaussian_head) -> RiggedMPIHead:
    """The drawn face (with sclera) spread over nine planes around the keypoints' depth: the
    face itself on its plane, and on the others translucent rings of it (empty middles, as a
    baked head's planes hold slices of its surface), so planes differ in content and boxes."""
    base = drawn_mpi_head(gaussian_head, dtype=np.float32, sclera=True)
    plane = int(np.flatnonzero(base.planes[..., 3].any(axis=(1, 2)))[0])
    face = np.array(base.planes[plane])
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    r = np.hypot(xx - SIZE / 2, yy - SIZE / 2)
    planes = np.array(base.planes)
    for k in range(-4, 5):
        if k == 0:
            continue
        ring = (r > 20 + 8 * abs(k)) & (r < 34 + 9 * abs(k))
        planes[plane + k] = face * ring[..., None]
        planes[plane + k, ..., 3] *= 0.5
    planes = np.round(planes * 255).astype(np.uint8)
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__ if f != "planes"}
    return RiggedMPIHead(planes=planes, **fields)


def reference_deform(head: RiggedMPIHead, v: np.ndarray) -> np.ndarray:
    """The planes [D, H, W, 4] a frame gives, the straightforward way: a copy of every plane,
    the expression field summed at every pixel in float64 (no coarse samples, no boxes), the
    jaw shift, every plane with content resampled whole; then the same paint stages."""
    import cv2

    from models.heads import mpi_head as mod

    exp = v[CHANNEL_INDEX["exp_0_x"] : CHANNEL_INDEX["exp_0_x"] + 63].reshape(21, 3)
    jaw = max(float(exp[19, 1]), 0.0)
    planes = np.array(head.planes)
    padded, content, _ = head._padded_planes()
    h, w = head.height, head.width
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    if np.any(exp):
        coef, mags = head._field_coefficients(exp, head._pose_rotation(v))
        q, sigma = head._kp_uv, head._sigma
        m = head._mouth
        jaw_px = jaw * head._kp_to_cam[1, 1] * head.intrinsics[1] / m["z"] if jaw > 0 else 0.0
        for d in range(head.num_planes):
            if content[d] is None:
                continue
            fx, fy = np.zeros((h, w)), np.zeros((h, w))
            for k in range(21):
                dx, dy = xx - q[k, 0], yy - q[k, 1]
                g = np.exp(-0.5 * (dx**2 + dy**2) / sigma**2)
                fx += g * (coef[k, d, 0] + mags[k, d] * dx)
                fy += g * (coef[k, d, 1] + mags[k, d] * dy)
            jaw_d = float(jaw_px * m["plane_weight"][d])
            if abs(jaw_d) >= mod._MIN_SHIFT:
                fy += mod._jaw_shift(m, xx, yy, jaw_d)
            src = np.stack([xx - fx, yy - fy], -1).astype(np.float32)
            planes[d] = cv2.remap(
                padded[d], src, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
    if jaw > 0:
        head._paint_mouth(planes, jaw)
    closure = head._closures(v, exp)
    ball = v[CHANNEL_INDEX["eye_ball_0"] : CHANNEL_INDEX["eye_ball_5"] + 1].reshape(2, 3)[:, :2]
    for eye in (0, 1):
        gaze = head._gaze_map(eye, ball[eye]) if np.any(ball[eye]) else None
        if gaze is not None:
            head._paint_gaze(planes, eye, gaze)
        if closure[eye].max() > 0:
            head._paint_lids(planes, eye, closure[eye])
    return planes


def random_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Speech-like frames: lips, brows, smile and pout deltas, a jaw, lids, gaze and pose."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        v = CHANNEL_DEFAULTS.copy()
        e0 = CHANNEL_INDEX["exp_0_x"]
        v[e0 : e0 + 63] = rng.normal(0.0, 0.008, 63)
        v[CHANNEL_INDEX["exp_19_y"]] = rng.uniform(0.0, 0.07)
        for name in ("eye_open_r", "eye_open_l"):
            v[CHANNEL_INDEX[name]] = rng.uniform(0.3, 1.0)
        for i in (0, 1, 3, 4):
            v[CHANNEL_INDEX[f"eye_ball_{i}"]] = rng.normal(0.0, 0.1)
        for name, sd in (("pitch", 5.0), ("yaw", 8.0), ("roll", 3.0)):
            v[CHANNEL_INDEX[name]] = rng.normal(0.0, sd)
        frames.append(v)
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def layered(head) -> RiggedMPIHead:
    return layered_mpi_head(head)


def cropped(head: RiggedMPIHead, y0: int, x0: int, h: int, w: int) -> RiggedMPIHead:
    """The head's planes cropped to [y0, y0 + h) x [x0, x0 + w) (its camera's principal point
    moved with them)."""
    intr = np.array(head.intrinsics)
    intr[2:] -= (x0, y0)
    fields = {f: getattr(head, f) for f in head.__dataclass_fields__}
    fields.update(planes=head.planes[:, y0 : y0 + h, x0 : x0 + w], intrinsics=intr)
    return RiggedMPIHead(**fields)


@pytest.mark.parametrize("odd", [False, True], ids=["192x192", "187x190"])
def test_deform_matches_the_full_copy_reference(layered, odd):
    """The fast path (field samples every sigma / 4, resampled boxes, reused buffers) draws what
    the straightforward full-resolution warp of every plane draws. Pixels whose field stays
    under _MIN_SHIFT (0.05 px) are left as they are: there the two may differ by that much
    motion, a few levels at a hard edge; and the field interpolated between samples (3 px apart
    at this small head's 13 px kernel) is off by up to ~0.2 px (0.09 at a lip edge; the
    version before the fast path, 4 px apart, was off as much). A size that is no multiple of
    the sampling step puts the samples' ends inside the image."""
    head = cropped(layered, 3, 5, 187, 190) if odd else layered
    for v in random_frames(6, seed=5 if odd else 0):
        got = head.deform(v)
        ref = reference_deform(head, v)
        a = front(got)
        b = front_rgba(ref.astype(np.float32) / 255.0)
        assert psnr(a, b) >= 45.0
        assert np.abs(a - b).max() < 0.12
        np.testing.assert_array_equal(got.world_to_camera, head.deform(v).world_to_camera)


def test_deformed_planes_are_new_read_only_arrays(layered):
    rest = layered.deform(CHANNEL_DEFAULTS)
    assert rest.rgba is layered.planes and not rest.rgba.flags.writeable
    # Only the camera moves for a pose: the head's own planes come back.
    assert layered.deform(frame(yaw=10.0, tx=0.01)).rgba is layered.planes
    for v in random_frames(3, seed=1):
        out = layered.deform(v).rgba
        assert not out.flags.writeable
        assert not np.shares_memory(out, layered.planes)
        with pytest.raises(ValueError, match="read-only"):
            out[0, 0, 0, 0] = 1
    assert not layered.planes.flags.writeable


def test_held_frames_never_change_and_reused_buffers_give_the_same_frames(head):
    """Buffers are reused only once nothing refers to them: frames a caller holds stay as they
    were, and a frame drawn into a reused buffer equals one drawn into a new buffer."""
    frames = [*random_frames(5, seed=2), frame(eye_open_r=0.0), frame(exp_19_y=0.05)]
    fresh = layered_mpi_head(head)
    # Every frame into a new buffer: all results held at once.
    expected = [fresh.deform(v).rgba for v in frames]
    assert len({id(x) for x in expected}) == len(frames)
    reuse = layered_mpi_head(head)
    held, reused, last = [], 0, None
    for i, v in enumerate(frames * 2):
        out = reuse.deform(v).rgba
        reused += last is not None and out is last()
        np.testing.assert_array_equal(out, expected[i % len(frames)])
        if i % 3 == 0:
            held.append((i % len(frames), out))  # kept: its buffer is not reused
            last = None
        else:
            last = weakref.ref(out)
        del out  # dropped: its buffer may be reused by the next frame
    assert reused >= 4
    for i, out in held:
        np.testing.assert_array_equal(out, expected[i])
    # A view keeps the buffer too.
    view = reuse.deform(frames[0]).rgba[..., 3]
    for v in frames[1:]:
        reuse.deform(v)
    np.testing.assert_array_equal(view, expected[0][..., 3])


def test_two_threads_deforming_at_once_get_the_frames_one_thread_gets(head):
    import threading

    frames = random_frames(6, seed=3)
    expected = [layered_mpi_head(head).deform(v).rgba for v in frames]
    shared = layered_mpi_head(head)  # its lazily built data is built under the race too
    results: dict[int, list] = {0: [], 1: []}
    errors = []
    start = threading.Barrier(2)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(3 * len(frames)):
                k = (i + 2 * t) % len(frames)
                results[t].append((k, np.array(shared.deform(frames[k]).rgba)))
        except Exception as exc:  # reported below: an assert in a thread is lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for t in (0, 1):
        assert len(results[t]) == 3 * len(frames)
        for k, out in results[t]:
            np.testing.assert_array_equal(out, expected[k])


def test_bad_heads_raise_value_errors(mpi_head):
    good = dict(
        name="x", planes=mpi_head.planes, depths=mpi_head.depths,
        intrinsics=mpi_head.intrinsics, world_to_camera=mpi_head.world_to_camera,
        keypoints=mpi_head.keypoints, kp_to_world=mpi_head.kp_to_world, rig=mpi_head.rig,
    )  # fmt: skip
    for change, match in (
        ({"planes": mpi_head.planes[..., :3]}, "planes"),
        ({"depths": mpi_head.depths[::-1]}, "increasing"),
        ({"depths": mpi_head.depths[:3]}, "depths"),
        ({"intrinsics": [1.0, 1.0, 0.0]}, "intrinsics"),
        ({"world_to_camera": np.diag([2.0, 1.0, 1.0, 1.0])}, "rigid"),
        ({"keypoints": np.zeros((20, 3))}, "keypoints"),
        ({"planes": np.full((2, 4, 4, 4), 2.0, np.float32), "depths": [1.0, 2.0]}, "planes"),
    ):
        with pytest.raises(ValueError, match=match):
            RiggedMPIHead(**{**good, **change})


# --------------------------------------------------------------------------------- .thead files


def test_thead_round_trip_is_exact(mpi_head, tmp_path):
    path = tmp_path / "mpi.thead"
    save_head(mpi_head, path)
    got = load_head(path)
    assert isinstance(got, RiggedMPIHead)
    assert got.planes.dtype == np.uint8
    np.testing.assert_array_equal(got.planes, mpi_head.planes)
    for name in ("depths", "intrinsics", "world_to_camera", "keypoints", "kp_to_world"):
        np.testing.assert_array_equal(getattr(got, name), getattr(mpi_head, name))
    assert got.rig.to_dict() == mpi_head.rig.to_dict()
    assert got.name == "drawn" and got.metadata == {"drawn": True}
    v = frame(exp_19_y=0.04, eye_open_l=0.2, exp_14_x=-0.02, yaw=7.0)
    a, b = got.deform(v), mpi_head.deform(v)
    np.testing.assert_array_equal(a.rgba, b.rgba)
    np.testing.assert_array_equal(a.world_to_camera, b.world_to_camera)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        meta = json.loads(z.read("head.json"))
        assert z.read("thumbnail.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert names == {"head.json", "planes.npy", "keypoints.npy", "thumbnail.png"}
    assert meta["kind"] == "talking-head/mpi-head" and meta["version"] == 1
    # Float planes round-trip exactly too.
    h32 = RiggedMPIHead(
        name="f", planes=mpi_head.rest.float_rgba(), depths=mpi_head.depths,
        intrinsics=mpi_head.intrinsics, world_to_camera=mpi_head.world_to_camera,
        keypoints=mpi_head.keypoints, kp_to_world=mpi_head.kp_to_world, rig=mpi_head.rig,
    )  # fmt: skip
    save_head(h32, tmp_path / "f.thead")
    np.testing.assert_array_equal(load_head(tmp_path / "f.thead").planes, h32.planes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.thead", "mpi.thead"]  # no temps


def _rewrite(src, dst, replace=None, drop=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in drop:
                continue
            data = (replace or {}).get(item.filename, zin.read(item.filename))
            zout.writestr(item.filename, data)


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_damaged_mpi_head_files_give_one_line(mpi_head, tmp_path):
    good = tmp_path / "good.thead"
    save_head(mpi_head, good)
    with zipfile.ZipFile(good) as z:
        meta = json.loads(z.read("head.json"))
    cases = {}

    def case(name, expected, **kw):
        _rewrite(good, tmp_path / name, **kw)
        cases[name] = expected

    case("noplanes.thead", "planes.npy is missing", drop=("planes.npy",))
    case("nokp.thead", "keypoints.npy is missing", drop=("keypoints.npy",))
    case("nojson.thead", "head.json is missing", drop=("head.json",))
    case("garbage.thead", "planes.npy is corrupt", replace={"planes.npy": b"not an npy"})
    case("shape.thead", "planes.npy is uint8", replace={"planes.npy": _npy(mpi_head.planes[:3])})
    case("kpshape.thead", "keypoints.npy has shape",
         replace={"keypoints.npy": _npy(np.zeros((20, 3)))})  # fmt: skip
    nan_kp = np.array(mpi_head.keypoints)
    nan_kp[3, 1] = np.nan
    case("kpnan.thead", "NaN", replace={"keypoints.npy": _npy(nan_kp)})
    for key, value, expected in (
        ("version", 99, "version 99 is not supported"),
        ("depths", "far", "'depths' has the wrong type"),
        ("depths", meta["depths"][::-1], "increasing"),
        ("intrinsics", {"fx": 1.0}, "invalid MPI head"),
        ("planes_dtype", "float16", "not supported"),
        ("world_to_camera", [[1, 0], [0, 1]], "invalid MPI head"),
    ):
        m = {**meta, key: value}
        case(f"{key}-{len(cases)}.thead", expected, replace={"head.json": json.dumps(m).encode()})
    m = dict(meta)
    del m["rig"]
    case("norig.thead", "has no 'rig'", replace={"head.json": json.dumps(m).encode()})
    (tmp_path / "trunc.thead").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases["trunc.thead"] = "not a head file or truncated"
    for name, expected in cases.items():
        with pytest.raises(HeadFileError) as info:
            load_head(tmp_path / name)
        message = str(info.value)
        assert "\n" not in message, name
        assert expected in message, (name, message)
