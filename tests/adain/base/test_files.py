import os

import pytest

from adain.base.files import atomic_path, remove_stale_temp_files


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("one")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "one" and os.listdir(tmp_path) == ["a.txt"]


def test_remove_stale_temp_files(tmp_path):
    # What a SIGKILL during atomic_path leaves: ".<name>.<8 random chars>.tmp" next to the target.
    stale = [tmp_path / ".checkpoint.pt.ab12_x9z.tmp", tmp_path / ".iter_0000002.jpg.00000000.tmp"]
    keep = [tmp_path / "checkpoint.pt", tmp_path / ".hidden", tmp_path / "notes.tmp", tmp_path / ".a.short.tmp"]
    for p in stale + keep:
        p.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in keep)
    assert remove_stale_temp_files(tmp_path / "missing") == 0
