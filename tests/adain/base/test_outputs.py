"""Batch output planning (issue 15, cases 1-3): outputs never replace inputs or each other."""

import os

import pytest

from adain.base.errors import ImageError, OutputError
from adain.base.storage.outputs import check_not_inputs, plan_batch, side_paths


def _names(plan, root):
    return [(it.input.relative_to(root).as_posix(), [o.relative_to(root).as_posix() for o in it.outputs])
            for it in plan.items]


def test_plan_mirrors_the_tree_and_keeps_shared_stems_apart(make_folder, tmp_path):
    src = make_folder(["a.jpg", "a.png", "b.png", "x/c.jpg", "y/c.jpg"], folder="in")
    plan = plan_batch([src], tmp_path / "out", side_suffixes=("_warped.png",))
    assert _names(plan, tmp_path) == [
        ("in/a.jpg", ["out/a_jpg.png", "out/a_jpg_warped.png"]),
        ("in/a.png", ["out/a_png.png", "out/a_png_warped.png"]),
        ("in/b.png", ["out/b.png", "out/b_warped.png"]),
        ("in/x/c.jpg", ["out/x/c.png", "out/x/c_warped.png"]),
        ("in/y/c.jpg", ["out/y/c.png", "out/y/c_warped.png"]),
    ]
    assert plan.excluded == [] and plan.existing == []


def test_plan_refuses_the_input_folder_as_output(make_folder):
    src = make_folder(["a.png"], folder="in")
    with pytest.raises(OutputError, match="it is the input folder"):
        plan_batch([src], src)
    with pytest.raises(OutputError, match="it is the input folder"):
        plan_batch([src], src / "sub" / "..")


def test_plan_leaves_out_earlier_outputs_inside_the_input_folder(make_folder):
    src = make_folder(["a.png", "out/a.png", "out/deeper/b.png"], folder="in")
    plan = plan_batch([src], src / "out")
    assert [it.input.name for it in plan.items] == ["a.png"]
    assert len(plan.excluded) == 2
    assert [it.input.name for it in plan.existing] == ["a.png"]  # out/a.png is from an earlier run


def test_plan_refuses_clashes_it_cannot_resolve(make_folder, tmp_path):
    one = make_folder(["x.jpg"], folder="one")
    two = make_folder(["x.jpg"], folder="two")
    with pytest.raises(OutputError, match="would both write it"):
        plan_batch([one, two], tmp_path / "out")
    # A side file of one input is another input's output: refused too.
    src = make_folder(["p.png", "p_warped.png"], folder="three")
    with pytest.raises(OutputError, match="would both write it"):
        plan_batch([src], tmp_path / "out3", side_suffixes=("_warped.png",))


def test_plan_refuses_outputs_onto_inputs(make_folder, tmp_path):
    src = make_folder(["t.png"], folder="in")
    style = make_folder(["t.png"], folder="out")  # the texture sits where an output would go
    with pytest.raises(OutputError, match=r"it is the --texture input"):
        plan_batch([src], tmp_path / "out", other_inputs=[("--texture", style / "t.png")])
    with pytest.raises(ImageError, match="no such file or folder"):
        plan_batch([tmp_path / "missing"], tmp_path / "o")
    with pytest.raises(OutputError, match="is not a folder"):
        plan_batch([src], src / "t.png")


def test_check_not_inputs_sees_links(tmp_path):
    c = tmp_path / "c.jpg"
    c.write_bytes(b"x")
    os.link(c, tmp_path / "hard.jpg")
    for out in (c, tmp_path / "hard.jpg", tmp_path / "." / "c.jpg"):
        with pytest.raises(OutputError, match="it is the --content input"):
            check_not_inputs([out], [("--content", c), ("--vgg", None)])
    check_not_inputs([tmp_path / "o.png"], [("--content", c)])
    assert side_paths(tmp_path / "o.png", ["_field.npy"]) == [tmp_path / "o_field.npy"]
