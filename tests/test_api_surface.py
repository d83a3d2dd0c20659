"""Guard the public API: removals must be deliberate (update api_surface.json with them)."""

import json
from pathlib import Path

import adain
import warpstyle

EXPECTED = json.loads((Path(__file__).parent / "api_surface.json").read_text())


def test_public_names_are_present():
    for module, names in (("adain", adain), ("warpstyle", warpstyle)):
        missing = sorted(set(EXPECTED[module]) - set(names.__all__))
        assert not missing, f"{module} lost public names: {missing}"
        for n in names.__all__:
            assert hasattr(names, n), f"{module}.__all__ names {n} but it is not defined"
