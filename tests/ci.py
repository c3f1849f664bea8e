"""Whether this run is CI, and what a missing prerequisite does in each case.

Under CI=true every test must run: a missing server, binary or permission fails the run.
Elsewhere such tests skip and say how to enable them.
"""

from __future__ import annotations

import os
from typing import NoReturn

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(problem: str, enable: str) -> NoReturn:
    """Fail under CI=true; elsewhere skip with `problem` and how to `enable` the test."""
    import pytest  # here, so that the benchmark can import the helpers beside this without it

    if IN_CI:
        pytest.fail(f"{problem} (CI=true requires it)", pytrace=False)
    pytest.skip(f"{problem}. {enable}")
