"""What the tests stand on, apart from the tests themselves.

Real QEMU and its guard (``liveqemu``, ``qemuguard``), stand-ins that
misbehave on purpose (``misbehaving_qemu``), replays of real hosts'
captures (``replay/``), real sshd fleets on 127.0.0.x (``sshd``), the
real-CPU data's location (``realdata``), the README tour's reader
(``readme_tour``), and a deliberately leaky case the hygiene test runs.
"""
