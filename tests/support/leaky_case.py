"""Not collected by the suite: tests/test_suite_hygiene.py runs it to see the leak check fire."""

import tempfile


def test_leaves_a_directory_behind() -> None:
    tempfile.mkdtemp(prefix="leaked-")
