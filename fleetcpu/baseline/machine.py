"""Which machine type a pool's baseline is for. Pure.

The same CPU model means different things on different machine types, so a
baseline is always for one, and every member must have been probed with
it. Three ways to name it, in order: ``--machine-type``, the pool's declared
``machine_types=`` (inventory), else the newest machine type every member
was probed with. "Newest" is numeric within a family (``pc-q35-10.0`` >
``pc-q35-9.2``); across families q35 comes first (the probe's default and
what new VMs use), then i440fx, then the rest. ``none`` is never chosen
automatically: no VM runs on it.

A name may be an alias (``q35``): it is resolved per member through what
that member's probe was asked (``MachineProbe.requested``), and accepted
only when it resolves to the same versioned type everywhere: ``q35`` on
QEMU 7.2 and 8.2 are different machines, which is the whole point.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..errors import NoCommonMachineTypeError
from .compute import host_list
from .types import Notice

__all__ = ["ADVICE", "Probed", "choose_machine_type", "family_version", "newest", "preference"]

#: host -> {resolved machine type probed: the name the probe was asked for}
Probed = Mapping[str, Mapping[str, str]]

_VERSION = re.compile(r"^(?P<family>.*?)-?(?P<version>\d+(?:\.\d+)*)$")
ADVICE = (
    "declare the pool's machine type (machine_types= in the inventory, or --machine-type) and collect again"
)


def family_version(name: str) -> tuple[str, tuple[int, ...]]:
    """``pc-q35-10.0`` -> ("pc-q35", (10, 0)); ``pc-q35-rhel9.2.0`` -> ("pc-q35-rhel", (9, 2, 0))."""
    m = _VERSION.match(name)
    if m is None or not m.group("family"):
        return name, ()
    return m.group("family"), tuple(int(p) for p in m.group("version").split("."))


def _family_rank(family: str) -> int:
    if family == "pc-q35":
        return 0
    if "q35" in family:
        return 1
    if family == "pc-i440fx":
        return 2
    if "i440fx" in family:
        return 3
    return 4


def preference(name: str) -> tuple[int, str, tuple[int, ...]]:
    """Sort key, best first when sorted ascending: family rank, family, then newest version."""
    family, version = family_version(name)
    return _family_rank(family), family, tuple(-v for v in version)


def newest(names: Sequence[str] | set[str] | frozenset[str]) -> str | None:
    usable = [n for n in names if n != "none"]
    return min(usable, key=preference) if usable else None


def _resolve(name: str, probed: Probed) -> dict[str, str | None]:
    """Per host: the versioned type ``name`` is there (itself, or what it was asked as)."""
    out: dict[str, str | None] = {}
    for host, types in probed.items():
        if name in types:
            out[host] = name
        else:
            out[host] = next((t for t, asked in sorted(types.items()) if asked == name), None)
    return out


def _have(probed: Probed, hosts: Sequence[str]) -> str:
    """``a, b have pc-q35-7.2; c has pc-q35-8.2``: hosts grouped by what they were probed with."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for h in sorted(hosts):
        groups.setdefault(tuple(sorted(probed[h], key=preference)), []).append(h)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    return "; ".join(
        f"{host_list(members)} {'has' if len(members) == 1 else 'have'} {', '.join(types) or 'none'}"
        for types, members in ordered
    )


def _common(probed: Probed) -> set[str]:
    sets = [set(types) for types in probed.values()]
    return set.intersection(*sets) if sets else set()


def _everywhere(name: str, probed: Probed, what: str) -> str:
    """The versioned type ``name`` stands for on every member, or NoCommonMachineTypeError."""
    resolved = _resolve(name, probed)
    lacking = sorted(h for h, t in resolved.items() if t is None)
    if lacking:
        common = sorted(_common(probed) - {"none"}, key=preference)
        raise NoCommonMachineTypeError(
            f"{what} {name} was not probed on {len(lacking)} of {len(probed)} members "
            f"({_have(probed, lacking)}); common to all: {', '.join(common) or 'none'}; {ADVICE}"
        )
    targets = sorted({t for t in resolved.values() if t is not None})
    if len(targets) > 1:
        by = "; ".join(f"{t}: {host_list(sorted(h for h, r in resolved.items() if r == t))}" for t in targets)
        raise NoCommonMachineTypeError(
            f"{what} {name} is an alias standing for different machine types ({by}); "
            "name a versioned machine type"
        )
    return targets[0]


def choose_machine_type(
    probed: Probed, *, explicit: str | None = None, declared: Sequence[str] = ()
) -> tuple[str, list[Notice]]:
    """The machine type, and notices (other declared types) ; raises NoCommonMachineTypeError (22)."""
    if not probed:
        raise ValueError("no members to choose a machine type for")
    if explicit:
        return _everywhere(explicit, probed, "machine type"), []
    if declared:
        found: dict[str, str] = {}
        errors: list[str] = []
        for name in dict.fromkeys(declared):
            try:
                found[name] = _everywhere(name, probed, "declared machine type")
            except NoCommonMachineTypeError as exc:
                errors.append(exc.message)
        if not found:
            raise NoCommonMachineTypeError(
                f"the pool declares machine_types={','.join(dict.fromkeys(declared))} but none "
                "was probed on every member: " + " | ".join(errors)
            )
        chosen = min(found.values(), key=preference)
        others = sorted(set(dict.fromkeys(declared)) - {n for n, t in found.items() if t == chosen})
        notices = []
        if others:
            notices.append(
                Notice(
                    "other-declared-machine-types",
                    f"the pool also declares {', '.join(others)}: this baseline is for {chosen}; "
                    "run again with --machine-type for each",
                )
            )
        return chosen, notices
    chosen_auto = newest(_common(probed))
    if chosen_auto is None:
        hosts = sorted(probed)
        raise NoCommonMachineTypeError(
            f"no machine type was probed on every member ({_have(probed, hosts)}); {ADVICE}"
        )
    return chosen_auto, []
