"""Packaging: the declared dependencies match what the packages import and the torch APIs they call."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(reqs: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].lower(): r for r in reqs}


def _imported_top_levels() -> set[str]:
    found: set[str] = set()
    for pkg in ("adain", "warpstyle"):
        for f in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return found


def test_torch_floor_covers_device_type_autocast_api():
    # torch.get_autocast_dtype(device) and torch.is_autocast_enabled(device) appeared in torch 2.4.
    uses = (ROOT / "adain/base/encoder/conv_relu.py").read_text()
    assert 'get_autocast_dtype("cpu")' in uses or "is_autocast_enabled(\"cpu\")" in uses
    torch_req = _names(_project()["dependencies"])["torch"]
    floor = re.search(r">=\s*(\d+)\.(\d+)", torch_req)
    assert floor and (int(floor.group(1)), int(floor.group(2))) >= (2, 4), torch_req


def test_test_only_packages_are_in_the_test_extra():
    imported = _imported_top_levels()
    deps = _names(_project()["dependencies"])
    test = _names(_project()["optional-dependencies"]["test"])
    for name in ("torchvision",):
        assert name not in imported, f"{name} is imported by the package; it must be a dependency"
        assert name not in deps, f"{name} is only used by tests; keep it in the test extra"
        assert name in test
    # scipy: the matcher's thin-plate spline (warpstyle/geometry/matching.py), a core dependency.
    for name in ("torch", "kornia", "numpy", "click", "tqdm", "scipy"):
        assert name in imported and name in deps
    assert "PIL" in imported and "pillow" in deps
