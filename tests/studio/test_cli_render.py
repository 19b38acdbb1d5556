"""``talking-head-studio render``: every asset kind, mono and stereo, headless, and its errors."""

import cv2
import numpy as np
import pytest

from renderers import Camera, GaussianCloud, disparity_depths
from renderers.formats import save_gaussians, write_mpi_folder
from renderers.mpi import MPI
from studio.cli import main

pytestmark = pytest.mark.gl


def _cloud() -> GaussianCloud:
    rng = np.random.default_rng(0)
    n = 400
    means = rng.normal(scale=0.05, size=(n, 3))
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    scales = np.full((n, 3), 0.008)
    return GaussianCloud.from_colors(means, quats, scales, np.full(n, 0.9), rng.random((n, 3)))


def _mpi() -> MPI:
    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), width=48, height=48)
    rgba = np.zeros((4, 48, 48, 4), np.float32)
    rgba[:, 12:36, 12:36] = (0.9, 0.5, 0.2, 0.6)
    return MPI(rgba, disparity_depths(0.45, 0.65, 4), cam)


def _read(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    return image[..., ::-1].astype(int)


@pytest.mark.parametrize("kind", [".ply", ".splat", "mpi"])
def test_renders_gaussian_files_and_mpi_folders_mono_and_stereo(tmp_path, capsys, kind):
    asset = tmp_path / ("asset" + (kind if kind != "mpi" else ""))
    if kind == "mpi":
        write_mpi_folder(asset, _mpi())
    else:
        save_gaussians(asset, _cloud())
    mono, stereo = tmp_path / "m.png", tmp_path / "s.png"
    common = ["--width", "64", "--height", "48", "--background", "0,0,0"]
    assert main(["render", str(asset), "--out", str(mono), *common]) == 0
    assert main(["render", str(asset), "--out", str(stereo), "--stereo", *common]) == 0
    m, s = _read(mono), _read(stereo)
    assert m.shape == (48, 64, 3) and s.shape == (48, 128, 3)
    assert m.sum() > 0  # the asset is in the picture
    left, right = s[:, :64], s[:, 64:]
    assert left.sum() > 0 and right.sum() > 0 and np.abs(left - right).sum() > 0
    assert "wrote" in capsys.readouterr().out


def test_head_files_and_projects_take_motion_overrides(tmp_path):
    from models.heads import builtin_head_path
    from studio.demo import DEMO_PROJECT

    head = builtin_head_path("default")
    out = [tmp_path / f"{i}.png" for i in range(3)]
    size = ["--width", "96", "--height", "96"]
    assert main(["render", str(head), "--out", str(out[0]), *size]) == 0
    assert main(["render", str(head), "--out", str(out[1]), *size, "--set", "exp_19_y=0.12"]) == 0
    assert main(["render", str(DEMO_PROJECT), "--out", str(out[2]), *size, "--frame", "40"]) == 0
    rest, open_jaw, frame = (_read(p) for p in out)
    # Opening the jaw changes the lower half of the face, not the top of the head.
    assert np.abs(rest[60:85] - open_jaw[60:85]).mean() > np.abs(rest[:30] - open_jaw[:30]).mean()
    assert frame.std() > 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing.ply"], "no such file"),
        (["{tmp}/x.txt"], "unknown asset type"),
        (["HEAD", "--set", "nonsense=1"], "unknown channel"),
        (["HEAD", "--set", "yaw=abc"], "not a number"),
        (["HEAD", "--width", "3"], "--width"),
        (["DEMO", "--frame", "100000"], "outside the project"),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, args, message):
    from models.heads import builtin_head_path
    from studio.demo import DEMO_PROJECT

    (tmp_path / "x.txt").write_text("hello")
    subst = {"HEAD": str(builtin_head_path("default")), "DEMO": str(DEMO_PROJECT)}
    args = [subst.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    assert main(["render", *args[:1], "--out", str(tmp_path / "o.png"), *args[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "o.png").exists()
