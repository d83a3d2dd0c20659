import os
import stat

import pytest

from adain.base.errors import OutputError
from adain.base.storage.files import atomic_path, check_output_path, remove_stale_temp_files, same_file


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


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_atomic_path_refuses_non_regular_files(tmp_path, kind):
    # Issue 15 case 6: a rename replaced /dev/full with a JSON file. A FIFO stands in for the device.
    target = tmp_path / "out.json"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    with pytest.raises(OutputError, match=r"cannot write '.*out.json': it exists and is (a FIFO|a folder)"):
        with atomic_path(target) as tmp:
            tmp.write_text("{}")
    mode = os.lstat(target).st_mode
    assert (stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISDIR(mode))
    assert os.listdir(tmp_path) == ["out.json"]  # no temp file left


def test_atomic_path_refuses_a_device():
    with pytest.raises(OutputError, match="a device"):
        check_output_path("/dev/null")


def test_atomic_path_writes_through_symlinks(tmp_path):
    real = tmp_path / "data" / "real.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_path(link) as tmp:
        tmp.write_text("new")
    assert link.is_symlink() and real.read_text() == "new"
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "data" / "created.txt")
    with atomic_path(dangling) as tmp:
        tmp.write_text("x")
    assert dangling.is_symlink() and (tmp_path / "data" / "created.txt").read_text() == "x"


def test_check_output_path_parent_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output_path(tmp_path / "f" / "out.png")


def test_same_file(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_text("x")
    os.link(a, tmp_path / "hard.jpg")
    (tmp_path / "sym.jpg").symlink_to(a)
    assert same_file(a, tmp_path / "hard.jpg") and same_file(a, tmp_path / "sym.jpg")
    assert same_file(tmp_path / "new.png", tmp_path / "sub" / ".." / "new.png")
    assert not same_file(a, tmp_path / "new.png")
