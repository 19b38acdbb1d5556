"""studio.document.audio.read_audio names the file in its errors, never an in-memory buffer."""

from __future__ import annotations

import pytest

from studio.document.audio import AudioError, read_audio


@pytest.mark.parametrize("data", [b"not audio at all", b"RIFF\x04\x00\x00\x00WAVEjunk"])
def test_bytes_errors_name_the_file_not_the_buffer(data, tmp_path):
    with pytest.raises(AudioError) as err:
        read_audio(data, name="speech/line.wav")
    msg = str(err.value)
    assert msg.startswith("speech/line.wav: not a readable audio file (")
    assert "BytesIO" not in msg and "0x" not in msg
    path = tmp_path / "line.wav"
    path.write_bytes(data)
    with pytest.raises(AudioError) as err:
        read_audio(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: not a readable audio file (") and msg.count(str(path)) == 1
