"""Replay hosts: real CPUs from libvirt's captures, behind a stand-in ``qemu-system-x86_64``.

No test machine can be a Cascade Lake, a Rome and a Hygon at once; the
captures in ``../shared/realdata/libvirt`` can. ``replay_qemu.py`` answers the
real probe from one capture; ``hosts.py`` builds a per-host wrapper and a
synthetic ``--host-root`` so that tests assemble fleets of real CPUs.

``capture.py``, ``cpumap.py`` and ``replay_qemu.py`` are stdlib-only and import
each other as top-level modules, because the fake runs as a script, fast, in
a bare interpreter (``python -E -s -S``) and must never import pytest.
"""
