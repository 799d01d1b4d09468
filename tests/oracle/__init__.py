"""libvirt as an independent judge of fleetcpu's baseline (issue 8, "Judged against libvirt").

libvirt has computed CPU baselines for years and ships its expected answers
for real host pairs with its tests; fleetcpu must agree with them wherever
both can speak, and every place it does not must be explained. The parts:

* ``cpu_map``    libvirt's model and feature tables (any release's directory):
                 guest CPU XML -> libvirt feature names -> QEMU spellings
* ``judge``      one host pair: libvirt's expected baseline, expanded, against
                 ours on the same two captures; every difference classified
* ``virsh``      the second opinion: Debian's ``virsh cpu-baseline`` on the
                 same two hosts, written as host-CPU definitions
* ``usability``  libvirt's ``domaincapsdata`` usable/blockers against the
                 probe's reading of ``unavailable-features``
* ``gen``        ``docs/oracle.md`` from the tests' JSON results (stdlib only)

The tables of *known* differences live in ``tests/test_oracle.py``: the
judge applies whatever table it is given, so the reasons sit next to the
assertions that hold them to the data.
"""
