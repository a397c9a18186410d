"""pytest plugin for mutation runs (``-p mutation_plugin``, tools/ on the path).

Hypothesis replays no example an earlier mutant saved (each mutant meets the same inputs,
from --hypothesis-seed=0) and does not shrink a failing example: a mutant is killed by the
first failure, and shrinking it took most of the run (about 7 s of a NAT64 mutant's 8).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import Phase, settings


@pytest.hookimpl(trylast=True)
def pytest_configure(config: Any) -> None:
    # after the project's conftest has loaded its profile: inherit it, change only these
    settings.register_profile("nfkit-mutation", parent=settings.default, database=None,
                              phases=(Phase.explicit, Phase.generate), report_multiple_bugs=False)
    settings.load_profile("nfkit-mutation")
