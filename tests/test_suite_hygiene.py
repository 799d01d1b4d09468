"""The suite's own safety nets work: a test that leaves temporaries behind fails the run."""

from __future__ import annotations

import subprocess

from .conftest import PYTHON, REPO


def test_a_leftover_temporary_fails_the_run() -> None:
    case = "tests/support/leaky_case.py"
    res = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", case],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 passed" in res.stdout
    assert "left temporary files behind: ['leaked-" in res.stdout
