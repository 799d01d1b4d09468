"""The store a notebook opens: the given one, or a demo of this machine when it is empty.

Why in the package and not in a notebook cell: a first-time user opening the
notebook on a machine that never collected should see figures, not an
error; building that store is I/O with a failure mode (no QEMU), and code
with a failure mode belongs where it is tested.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import NoUsableDataError
from ..store import Store

__all__ = ["LOCAL_INVENTORY", "open_or_demo"]

#: The same one line as inventories/local.txt, for an installed package without the checkout.
LOCAL_INVENTORY = "localhost transport=local pool=local\n"


def open_or_demo(location: Path) -> Store:
    """The store at ``location``; when it is missing or empty, a new demo store in a temporary
    directory holding one real collect of this machine (``inventories/local.txt``).

    The collect runs as ``python -m fleetcpu collect``, exactly as an operator
    would: a failed probe is then a stored failure row, and the notebook
    shows what is missing instead of raising.
    """
    try:
        return Store.open(location)
    except NoUsableDataError:
        pass
    demo = Path(tempfile.mkdtemp(prefix="fleetcpu-demo-")) / "store"
    inventory = Path(__file__).resolve().parents[2] / "inventories" / "local.txt"
    if not inventory.exists():
        inventory = demo.parent / "local.txt"
        inventory.write_text(LOCAL_INVENTORY)
    print(f"{location}: empty; building a demo store at {demo} by probing this machine")
    subprocess.run(
        [sys.executable, "-m", "fleetcpu", "collect", str(inventory), "--store", str(demo)], check=False
    )
    return Store.open(demo)
