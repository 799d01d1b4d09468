"""The pool baseline: the richest guest CPU every member of a pool can run, and why.

Layers, one job each:

* ``types``    the typed input (``Member``, ``Policy``) and output (``Baseline``)
* ``member``   a probe's ``MachineProbe`` -> ``Member`` (pure)
* ``compute``  members -> ``Baseline``: intersection, policy, scalars (pure)
* ``choose``   which named model spells the result with the fewest changes (pure)
* ``cpuarg``   the two ``-cpu`` strings (pure)
* ``machine``  machine-type ordering and choice (pure)
* ``require``  ``--require``: the requirement met, or what would meet it (pure)
* ``quotable`` every host-given name a config may hold, checked before any is written (pure)
* ``select``   the I/O shell: the store -> members, ``missing`` and notices

Only ``select`` touches the store; everything else is tested on records.
"""

from .compute import compute_baseline
from .member import member_from_probe
from .types import (
    SCHEMA,
    Baseline,
    FeatureBlock,
    HostRef,
    Member,
    Missing,
    ModelBlock,
    ModelVerdict,
    Notice,
    Policy,
    Scalars,
)

__all__ = [
    "SCHEMA",
    "Baseline",
    "FeatureBlock",
    "HostRef",
    "Member",
    "Missing",
    "ModelBlock",
    "ModelVerdict",
    "Notice",
    "Policy",
    "Scalars",
    "compute_baseline",
    "member_from_probe",
]
