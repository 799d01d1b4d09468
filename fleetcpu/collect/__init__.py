"""The orchestrator side: which hosts to probe, and getting their probe documents back.

Everything here runs on the operator's machine (Python >= 3.11), never on a
KVM host, so unlike ``fleetcpu.probe`` it may use modern typing and
third-party libraries. The inventory parser lives here rather than in the CLI
because every command that touches the fleet (collect, check, verify) must
agree on the same hosts, pools and connection settings.
"""
