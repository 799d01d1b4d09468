"""Explain and what-if: why the pool's CPU is what it is, and what a host does to it.

* ``groups``     members with identical CPU data, one representative each (pure)
* ``blockers``   blocked features and models, per-group what-ifs (pure)
* ``check``      can a host join without lowering the pool? (pure)
* ``candidate``  the I/O shell of ``check``: a stored host or a probe document
* ``printout``   table and JSON (``fleetcpu.blockers/1``, ``fleetcpu.check/1``)

Everything computes through ``fleetcpu.baseline.compute_baseline``: an
explanation can never disagree with the baseline it explains.
"""

from .answers import (
    BLOCKERS_SCHEMA,
    CHECK_SCHEMA,
    Blockers,
    Change,
    CheckResult,
    ModelBlocked,
    ScalarChange,
    WhatIf,
)
from .blockers import explain_blockers
from .check import check_join

__all__ = [
    "BLOCKERS_SCHEMA",
    "CHECK_SCHEMA",
    "Blockers",
    "Change",
    "CheckResult",
    "ModelBlocked",
    "ScalarChange",
    "WhatIf",
    "check_join",
    "explain_blockers",
]
