"""The I/O shell before any host is contacted: which CPU, which machine type, which hosts, how to reach them.

The order is the contract, and every refusal happens here, before a
connection is opened and before anything is written:

1. The inventory, when given: a malformed one is exit 3; a pool it does not
   name is exit 20 (naming the pools it has).
2. The CPU: ``--cpu``, else the pool's computed named CPU from the store,
   exactly as ``fleetcpu baseline`` computes it (default policy); the machine
   type: ``--machine-type``, else the baseline's. An unknown pool is 20,
   no usable data 21, no common machine type 22, mixed vendors 23.
3. The hosts: the inventory's members of the pool, else every host whose
   latest stored record names the pool, reached through the connection spec
   that record holds (address, port, user, python, qemu: never keys). The
   stored spec is the latest *record*'s, failed or not, because that is how
   the host was last reached. A host only ever imported from a file has no
   way in: it is kept, as a failure row, never silently dropped.

Why all members and not only the baseline's: a member left out of the
baseline (stale, never probed) is precisely the host an operator needs to
hear about before rolling the CPU out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UnknownPoolError, UsageError
from ..fleet.inventory import DEFAULT_MAX_HOSTS, HostSpec, load_inventory
from ..outcome import ConnectionSpec
from ..store import HostState, Store
from .verdicts import Target

__all__ = ["Plan", "Unreachable", "check_cpu", "hosts_from_store", "plan", "spec_from_connection"]


@dataclass(frozen=True)
class Unreachable:
    """A member fleetcpu cannot reach (no stored way in): a failure row, not a silent gap."""

    host: str
    pool: str
    message: str
    code: str


@dataclass(frozen=True)
class Plan:
    target: Target
    hosts: tuple[HostSpec, ...]
    unreachable: tuple[Unreachable, ...]
    #: The inventory file, or None when the hosts came from the store.
    inventory: str | None
    warnings: tuple[str, ...] = ()


def check_cpu(cpu: str) -> str:
    """``--cpu`` as QEMU will get it (plus ``,enforce``): one non-empty string, no whitespace."""
    text = cpu.strip()
    if not text or any(c.isspace() for c in text) or text.startswith(",") or text.endswith(","):
        raise UsageError(f"--cpu {cpu!r}: expected one -cpu string such as Skylake-Server-v4,+pcid")
    return text


def spec_from_connection(
    host: str, pool: str, accel: str, conn: ConnectionSpec, source: str
) -> HostSpec | Unreachable:
    """A stored connection spec back into the ``HostSpec`` the transports take."""
    if conn.transport == "local":
        return HostSpec(
            name=host,
            address=host,
            port=None,
            user=None,
            pool=pool,
            machine_types=(),
            qemu=conn.qemu,
            python=conn.python,
            accel=accel,
            transport="local",
            groups=(),
            source=source,
        )
    if conn.transport == "ssh" and conn.address:
        return HostSpec(
            name=host,
            address=conn.address,
            port=conn.port,
            user=conn.user,
            pool=pool,
            machine_types=(),
            qemu=conn.qemu,
            python=conn.python,
            accel=accel,
            transport="ssh",
            groups=(),
            source=source,
        )
    if conn.transport == "import":
        return Unreachable(
            host,
            pool,
            "only imported from a probe document, so the store "
            "holds no way to reach it: give an inventory naming it",
            "no-route",
        )
    return Unreachable(
        host,
        pool,
        f"its stored connection ({conn.transport}, address "
        f"{conn.address!r}) cannot be used: give an inventory naming it",
        "no-route",
    )


def hosts_from_store(
    store: Store, states: Sequence[HostState], accel: str
) -> tuple[list[HostSpec], list[Unreachable]]:
    """Each member's connection spec from its latest ``hosts`` row (one file read per distinct run)."""
    wanted = {(s.host, s.run) for s in states}
    rows = store.table(
        "hosts",
        columns=[
            "run_id",
            "host",
            "conn_transport",
            "conn_address",
            "conn_port",
            "conn_user",
            "conn_python",
            "conn_qemu",
        ],
        runs={s.run for s in states},
    ).to_pylist()
    found = {(str(r["host"]), str(r["run_id"])): r for r in rows if (r["host"], r["run_id"]) in wanted}
    specs: list[HostSpec] = []
    unreachable: list[Unreachable] = []
    for state in states:
        row = found.get((state.host, state.run))
        if row is None:
            unreachable.append(
                Unreachable(
                    state.host,
                    state.pool,
                    f"its latest record (run {state.run}) is not in the store",
                    "no-route",
                )
            )
            continue
        conn = ConnectionSpec(
            transport=row["conn_transport"] or "unknown",
            address=row["conn_address"],
            port=row["conn_port"],
            user=row["conn_user"],
            python=row["conn_python"],
            qemu=row["conn_qemu"],
        )
        spec = spec_from_connection(state.host, state.pool, accel, conn, f"store:{state.run}")
        if isinstance(spec, Unreachable):
            unreachable.append(spec)
        else:
            specs.append(spec)
    return specs, unreachable


def _target(store: Store | None, pool: str, accel: str, machine_type: str | None, cpu: str | None) -> Target:
    if cpu is not None and machine_type is not None:
        return Target(pool, accel, machine_type, check_cpu(cpu), "option")
    from ..baseline import Policy, compute_baseline
    from ..baseline.quotable import refuse_unquotable
    from ..baseline.select import select_members

    if store is None:
        raise UsageError("without a store holding the pool's probes, give both --cpu and --machine-type")
    chosen = select_members(store, pool, accel=accel, machine_type=machine_type)
    if cpu is not None:
        return Target(pool, accel, chosen.machine_type, check_cpu(cpu), "option")
    result = compute_baseline(
        pool,
        chosen.machine_type,
        accel,
        chosen.members,
        Policy(),
        missing=chosen.missing,
        notices=chosen.notices,
    )
    refuse_unquotable(result, "verify")  # its -cpu string goes to QEMU on every member
    return Target(pool, accel, chosen.machine_type, result.cpu, "baseline", result.model)


def plan(
    pool: str,
    *,
    store: Store | None,
    inventory_path: str | None,
    accel: str,
    machine_type: str | None = None,
    cpu: str | None = None,
    strict_inventory: bool = False,
    max_hosts: int = DEFAULT_MAX_HOSTS,
) -> Plan:
    """Everything decided before contact. Raises the error whose exit code the CLI returns."""
    if cpu is not None:
        check_cpu(cpu)
    warnings: tuple[str, ...] = ()
    members: list[HostSpec] = []
    unreachable: list[Unreachable] = []
    if inventory_path is not None:
        inventory = load_inventory(inventory_path, strict=strict_inventory, max_hosts=max_hosts)
        warnings = inventory.warnings
        pools = inventory.pools()
        if pool not in pools:
            raise UnknownPoolError(
                f"{inventory_path}: no host of pool {pool!r}; its pools: {', '.join(sorted(pools)) or 'none'}"
            )
        members = list(pools[pool])
    target = _target(store, pool, accel, machine_type, cpu)
    if inventory_path is None:
        if store is None:
            raise UsageError("no inventory and no store: nothing says which hosts are in the pool")
        members, unreachable = hosts_from_store(store, store.latest(pool), accel)
    return Plan(target, tuple(members), tuple(unreachable), inventory_path, warnings)
