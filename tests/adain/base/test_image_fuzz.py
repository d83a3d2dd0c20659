"""Fast CI subset of the image fuzz harness (``scripts/fuzz_images.py``; the long run is documented in
``docs/reliability.md``).

Every input must end as a correct image or an :class:`~adain.base.errors.ImageError` with a one-line
message; the CLIs must exit 0 with an output of the right size, or 2 with exactly one stderr line.
Each loader case is bounded in time by ``SIGALRM`` inside the harness.
"""

from __future__ import annotations

import importlib.util
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adain.base.image

_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "fuzz_images.py"


def _load_harness():
    spec = importlib.util.spec_from_file_location("fuzz_images", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_images"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


fz = _load_harness()

#: Cases per category in the in-process subset (about 0.4 s per category).
PER_CATEGORY = 24


def _fail_message(outcomes) -> str:
    return "\n".join(f"{o.case_id} [{o.name}]: {o.detail}" for o in outcomes if o.outcome == "fail")


@pytest.mark.parametrize("category", fz.CATEGORIES)
def test_loader_category_subset(category, tmp_path):
    outcomes = []
    for k in range(PER_CATEGORY):
        case = fz.make_case(category, k, seed=0)
        if case.heavy:  # the at-limit real bombs cost seconds and GBs: the long run covers them
            continue
        outcomes.append(fz.run_loader_case(case, tmp_path / f"c{k}"))
    assert outcomes and not any(o.outcome == "fail" for o in outcomes), _fail_message(outcomes)


def test_well_formed_categories_really_load(tmp_path):
    """The correctness categories are not silently passing as errors: well-formed files decode."""
    for category in ("valid", "extreme_dims", "exif_orientation", "animated", "cmyk"):
        for k in range(6):
            case = fz.make_case(category, k, seed=3)
            if case.expect == "load":
                assert fz.run_loader_case(case, tmp_path).outcome == "ok", case.name


def test_generation_is_deterministic():
    for category in fz.CATEGORIES:
        a, b = fz.make_case(category, 5, seed=7), fz.make_case(category, 5, seed=7)
        assert (a.name, a.data, a.ext) == (b.name, b.data, b.ext)
    assert fz.make_case("bit_flipped", 5, seed=7).data != fz.make_case("bit_flipped", 5, seed=8).data


def test_allocation_meets_the_issue_counts():
    assert sum(fz.allocate(10_000, fz.LOADER_WEIGHTS).values()) == 10_000
    assert sum(fz.allocate(300, fz.CLI_WEIGHTS).values()) == 300
    assert set(fz.LOADER_WEIGHTS) == set(fz.CLI_WEIGHTS) == set(fz.CATEGORIES)
    assert fz.MAX_PIXELS == adain.base.image.DEFAULT_MAX_PIXELS


# ---------------------------------------------------------------------------- the classifier can fail


def test_classifier_flags_untyped_exceptions(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(adain.base.image, "load_image", boom)
    out = fz.run_loader_case(fz.make_case("valid", 0), tmp_path)
    assert out.outcome == "fail" and "RuntimeError" in out.detail


def test_classifier_flags_wrong_pixels_refusals_and_acceptances(tmp_path, monkeypatch):
    case = fz.make_case("valid", 1)
    assert fz.check_image_result(case, (1, 3, *case.hw), np.full((1, 3, *case.hw), 2.0, np.float32))
    assert fz.check_image_result(case, (1, 3, 1, 1), np.zeros((1, 3, 1, 1), np.float32))
    bomb = fz.Case("size_claims", 0, "bomb", b"", ".png", expect="refuse")
    assert "must be refused" in fz.check_image_result(bomb, (1, 3, 2, 2), np.zeros((1, 3, 2, 2), np.float32))
    monkeypatch.setattr(adain.base.image, "load_image", lambda *a, **k: (_ for _ in ()).throw(
        adain.base.image.ImageError(str(tmp_path / "x.png"), "nope")))
    assert fz.run_loader_case(case, tmp_path).outcome == "fail"  # a well-formed file refused


def test_classifier_bounds_time(tmp_path, monkeypatch):
    def slow(*args, **kwargs):
        import time

        time.sleep(5)

    monkeypatch.setattr(fz, "CASE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(adain.base.image, "load_image", slow)
    out = fz.run_loader_case(fz.make_case("valid", 0), tmp_path)
    assert out.outcome == "fail" and out.detail.startswith("timeout") and out.seconds < 2


# ---------------------------------------------------------------------------- regressions found by the long run


def test_dark_16_bit_pgm_is_scaled_by_65535(tmp_path):
    from PIL import Image

    path = tmp_path / "dark.pgm"
    Image.fromarray(np.full((3, 4), 200, np.uint16)).save(path)  # maxval 65535, every value 200
    assert abs(float(adain.base.image.load_image(path).max()) - 200 / 65535) < 1e-6


def test_libtiff_errors_do_not_reach_stderr(tmp_path):
    case = fz.make_case("truncated", 23, seed=0, stream=1)  # libtiff prints "TIFFFetchDirectory: ..."
    out = fz.run_loader_case(case, tmp_path)
    assert out.outcome == "typed", out.detail


# ---------------------------------------------------------------------------- hypothesis: bytes-level

_BASES = [fz.make_case(c, k, seed=11) for c, k in
          [("valid", 0), ("valid", 1), ("valid", 2), ("animated", 0), ("cmyk", 0), ("exif_orientation", 0),
           ("palette_transparency", 0), ("high_bit_depth", 0), ("valid", 3), ("valid", 4)]]


@settings(max_examples=150, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(_BASES),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
       cut=st.floats(0.0, 1.0))
def test_hypothesis_mutated_files(tmp_path, base, edits, cut):
    data = bytearray(base.data)
    for pos, val in edits:
        data[int(pos * len(data))] = val
    data = bytes(data[: max(1, int(cut * len(data)))] if cut < 1.0 else data)
    case = fz.Case("hypothesis", 0, base.name, data, base.ext)
    out = fz.run_loader_case(case, tmp_path)
    assert out.outcome != "fail", out.detail


@settings(max_examples=100, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from([m for _, m, _ in fz._MAGICS] + [b""]), tail=st.binary(max_size=200),
       ext=st.sampled_from([".png", ".jpg", ".gif", ".webp", ".tif", ".bmp", ""]))
def test_hypothesis_magic_plus_junk(tmp_path, prefix, tail, ext):
    out = fz.run_loader_case(fz.Case("hypothesis", 0, "junk", prefix + tail, ext), tmp_path)
    assert out.outcome != "fail", out.detail


@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(0, 2**31 - 1), h=st.integers(0, 2**31 - 1), ct=st.sampled_from([0, 2, 3, 4, 6]),
       bd=st.sampled_from([1, 8, 16]))
def test_hypothesis_png_size_claims(tmp_path, w, h, ct, bd):
    data = fz._png(w, h, bd, ct, zlib.compress(b"\0" * 32), extra=[(b"PLTE", b"\0" * 6)] if ct == 3 else [])
    expect = "refuse" if w * h > fz.MAX_PIXELS else "any"
    out = fz.run_loader_case(fz.Case("hypothesis", 0, f"{w}x{h}", data, ".png", expect=expect), tmp_path)
    assert out.outcome != "fail", out.detail


# ---------------------------------------------------------------------------- real CLI subprocesses

# (category, seed-0 index, program, slot): well-formed oddities that must work, and broken files that
# must give one stderr line and exit 2. The thin images are regressions for a styler crash.
_CLI_CASES = [
    ("extreme_dims", "10000x10", "adain", "content"),
    ("extreme_dims", "10x10000", "warpstyle", "style"),
    ("cmyk", "JPEG CMYK", "adain", "content"),
    ("animated", "GIF animated", "warpstyle", "geometry"),
    ("truncated", "JPEG", "adain", "content"),
    ("size_claims", "claims", "warpstyle", "content"),
    ("zero_and_tiny", "0 bytes", "adain", "style"),
    ("special_paths", "directory", "warpstyle", "content"),
    ("header_fields", 147, "adain", "content"),  # Pillow logs an ERROR before raising: still one line
]


def _find(category: str, needle: str | int):
    if isinstance(needle, int):
        return fz.make_case(category, needle, seed=0)
    for k in range(400):
        case = fz.make_case(category, k, seed=0)
        if needle in case.name and not case.heavy and (category != "size_claims" or case.expect == "refuse"):
            return case
    raise AssertionError(f"no {category} case named like {needle!r}")


@pytest.mark.slow
def test_cli_subprocesses(tmp_path):
    cases = [(_find(cat, needle), prog, slot) for cat, needle, prog, slot in _CLI_CASES]
    outcomes = fz.run_cli_cases(cases, tmp_path, workers=2)
    assert not any(o.outcome == "fail" for o in outcomes), _fail_message(outcomes)
    got = {o.category: o.outcome for o in outcomes}
    assert got["extreme_dims"] == got["cmyk"] == got["animated"] == "ok"
    assert got["zero_and_tiny"] == got["special_paths"] == got["size_claims"] == "typed"
