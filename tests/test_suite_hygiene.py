"""The suite's own safety nets work: a test that leaves temporaries behind fails the run."""

from __future__ import annotations

import subprocess

from .conftest import PYTHON, REPO


def test_a_leftover_temporary_fails_the_run() -> None:
    res = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/leaky_case.py"],
                         capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 passed" in res.stdout
    assert "left temporary files behind: ['leaked-" in res.stdout
