"""fleetcpu: the guest CPU model every host of a KVM migration pool can run, measured.

Kept import-free on purpose: this package's ``probe`` subpackage ships to KVM
hosts (Python 3.9, stdlib + qemu.qmp) together with this file and
``errors.py``, so nothing heavy may load here.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
