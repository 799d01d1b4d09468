"""The host inventory (``hosts.txt``): a strict subset of Ansible's INI inventory.

Why a subset of Ansible's format rather than a format of our own: the people
who run KVM fleets already keep an Ansible inventory, and asking them to keep
a second list that drifts from the first is how hosts get left out of a
migration pool. So an Ansible INI inventory parses here unchanged, except
where it is ambiguous or unusable for fleetcpu (a host in two pool-less
groups, a connection type other than ssh/local, an IPv6 host name), and a
fleetcpu file that avoids the ``user@`` shorthand is a valid Ansible
inventory.

Why strict: the inventory decides which hosts share a guest CPU model. A typo
that silently drops a host, or puts it in the wrong pool, produces a CPU model
that one host cannot run, and the failure shows up weeks later as a refused
live migration. So every malformed line is an ``InventoryError`` naming the
file, line and problem, raised before a single host is contacted; only keys
fleetcpu does not use (an Ansible inventory is full of them) are mere
warnings, once per key name so a 10,000-host file does not bury the output.

Choices made where Ansible and the issue leave room (tests pin each one):

* Identity is the host token minus ``user@`` and ``:port``: ``root@kvm01:2222``
  is host ``kvm01``, reached as user ``root`` on port 2222. The same machine
  written two ways is then one host, and merging the two definitions
  succeeds unless they disagree. (``user@`` is fleetcpu's shorthand; Ansible
  itself wants ``ansible_user=``, which the shipped example uses.)
* ``#`` starts a comment at the start of a line or of a token (after
  whitespace, outside quotes); ``;`` only at the start of a line, as in
  Ansible. In ``[group:vars]`` an unquoted value also ends before a
  whitespace-preceded ``#``, so a note after a value never becomes part of
  it (a ``qemu`` path with a comment glued on would only fail on the host).
* Host lines are split like a POSIX shell (``'...'``, ``"..."``, backslash),
  as Ansible does. A ``[group:vars]`` line is ``key = value`` with optional
  spaces around ``=`` and an optionally quoted value, as in Ansible.
* Conflicts are checked only for keys fleetcpu uses, after aliases are folded
  (``python`` and ``ansible_python_interpreter`` are one key, so are
  ``transport`` and ``ansible_connection``). Ignored keys never make a file
  invalid: Ansible itself accepts ``ansible_become=yes`` on one line and
  ``ansible_become=no`` on another.
* A ``[group:vars]`` key set twice for the same group with different values is
  a conflict too (Ansible would take the last; here it is most likely a
  pasted block that was not cleaned up).
* Unrelated groups at the same depth are merged in name order, the later
  name winning, exactly as Ansible orders them (``ansible_group_priority`` is
  not honoured; it warns as an unknown key).
* The deprecated ``ansible_ssh_host``, ``ansible_ssh_port`` and
  ``ansible_ssh_user`` are honoured as aliases: ignoring them would send
  fleetcpu to the wrong machine of an old inventory.
* A ``[group:vars]`` section for a group that no ``[group]`` or
  ``[group:children]`` section defines is an error, as in Ansible: it is
  nearly always a misspelt group whose ``machine_types`` would silently not
  apply.
* ``groups`` omits ``all`` and ``ungrouped``: they carry no information.
* ``machine_types=`` (empty) means "probe the host's own q35", so one host can
  opt out of its group's list; every other known key refuses an empty value.
* Group and pool names, host names and machine types are limited to
  ``[A-Za-z0-9_.-]``: they end up in file names, store rows and command lines.
* ``host_root=/DIR`` (added for ``collect``) becomes the probe's
  ``--host-root``: a probe run in a container that sees the host under
  ``/host``, or a replay host in tests. A dedicated, validated key rather
  than free-form probe flags, so an inventory cannot smuggle arbitrary
  options to the probe.
* One host pattern may expand to at most ``MAX_EXPANSION`` names, so a typo
  such as ``kvm[0:99999999]`` fails fast instead of exhausting memory.
* Every value ends up as an argument on some command line (``ssh``,
  ``exec python``, the probe's flags), so none may start with ``-``
  (``python=-c`` became an option to ``exec``), no line may hold a NUL byte
  (it showed up as "connection lost"), and an address may hold none of the
  characters OpenSSH refuses in a host name (``SSH_HOST_FORBIDDEN``: ``;``,
  ``$``, backticks, quotes...). Each is an error naming file and line, before
  any host is contacted, like every other malformed line.
* The whole inventory may name at most ``max_hosts`` distinct hosts
  (``DEFAULT_MAX_HOSTS``, 100,000; ``--max-hosts N`` lifts it): ``h[0:999999]``
  on three lines took 34 s and 2.2 GiB to refuse nothing. Going over is an
  error at the line that does it, found while reading, before any host is
  contacted; a pattern larger than the cap is refused before it is expanded.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import string
from dataclasses import dataclass, field
from typing import NamedTuple

from fleetcpu.errors import InventoryError
from fleetcpu.vocabulary import AccelRequest

__all__ = [
    "ACCELS",
    "DEFAULT_MAX_HOSTS",
    "DEFAULT_POOL",
    "MAX_EXPANSION",
    "SSH_HOST_FORBIDDEN",
    "TRANSPORTS",
    "HostSpec",
    "Inventory",
    "load_inventory",
    "parse_inventory",
]

#: The pool of a host that neither sets ``pool=`` nor belongs to any group.
DEFAULT_POOL = "default"
#: Most names one host pattern may expand to (see the module docstring).
MAX_EXPANSION = 1_000_000
#: Most distinct hosts one inventory may name unless the caller lifts it (``--max-hosts``).
DEFAULT_MAX_HOSTS = 100_000

ACCELS = AccelRequest.values()
TRANSPORTS = ("ssh", "local")

#: Key as written -> the one setting it controls.
_ALIASES: dict[str, str] = {
    "ansible_host": "address",
    "ansible_ssh_host": "address",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_python_interpreter": "python",
    "python": "python",
    "ansible_connection": "transport",
    "transport": "transport",
    "pool": "pool",
    "machine_types": "machine_types",
    "qemu": "qemu",
    "accel": "accel",
    "host_root": "host_root",
}
_IMPLICIT_GROUPS = frozenset({"all", "ungrouped"})
_SECTION_KINDS = ("hosts", "vars", "children")

_NAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
#: What OpenSSH's ``valid_hostname`` refuses in a host name (besides whitespace).
SSH_HOST_FORBIDDEN = "'`\"$\\;&<>|(){}"
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS_RE = re.compile(r"[0-9]+")
_HEX_GROUP_RE = re.compile(r"[0-9A-Fa-f]{1,4}")
_HEADER_RE = re.compile(r"\[([^\s:\[\]]+)(?::([^\s\]]*))?\]\s*(?:[#;].*)?")
_RANGE_RE = re.compile(r"\[([^\[\]]*)\]")
_COMMENT_AFTER_VALUE_RE = re.compile(r"\s#")


@dataclass(frozen=True)
class HostSpec:
    """One host as every fleet command sees it, all precedence already applied."""

    name: str
    address: str
    port: int | None
    user: str | None
    pool: str
    machine_types: tuple[str, ...]
    qemu: str | None
    python: str | None
    accel: str
    transport: str
    groups: tuple[str, ...]
    source: str
    #: The probe's ``--host-root``: where the host's /proc and /sys are seen
    #: from (a probe run in a container; replay hosts in tests). None: "/".
    host_root: str | None = None


@dataclass(frozen=True)
class Inventory:
    """A parsed inventory; ``warnings`` are for the CLI to print, not to raise."""

    path: str
    hosts: tuple[HostSpec, ...]
    warnings: tuple[str, ...] = ()

    def pools(self) -> dict[str, tuple[HostSpec, ...]]:
        """Hosts by pool, pools in order of first appearance, so output is stable."""
        out: dict[str, list[HostSpec]] = {}
        for host in self.hosts:
            out.setdefault(host.pool, []).append(host)
        return {pool: tuple(hosts) for pool, hosts in out.items()}


class _LineError(Exception):
    """A problem found by a helper that does not know the file and line."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _Set(NamedTuple):
    """A setting with where it came from, so a conflict can point at both lines."""

    value: str  # normalised: conflicts compare these strings
    line: int
    key: str  # as written, for messages


@dataclass
class _Host:
    name: str
    line: int
    settings: dict[str, _Set]
    #: Direct group -> line of the first listing (dict: ordered and unique).
    groups: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------- lexing


def _tokenize(line: str) -> list[str]:
    """Split a line like POSIX sh (and so like Ansible's shlex), dropping a ``#`` comment."""
    if '"' not in line and "'" not in line and "\\" not in line:
        # The fast path every line of a large generated inventory takes.
        tokens = line.split()
        for i, token in enumerate(tokens):
            if token.startswith("#"):
                return tokens[:i]
        return tokens
    return _tokenize_quoted(line)


def _tokenize_quoted(line: str) -> list[str]:
    tokens: list[str] = []
    buf: list[str] = []
    in_token = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            if in_token:
                tokens.append("".join(buf))
                buf.clear()
                in_token = False
            i += 1
            continue
        if c == "#" and not in_token:
            break
        in_token = True
        if c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise _LineError("unterminated ' quote")
            buf.append(line[i + 1 : end])
            i = end + 1
        elif c == '"':
            i = _read_double_quoted(line, i + 1, buf)
        elif c == "\\":
            if i + 1 >= n:
                raise _LineError("the line ends with a lone backslash")
            buf.append(line[i + 1])
            i += 2
        else:
            buf.append(c)
            i += 1
    if in_token:
        tokens.append("".join(buf))
    return tokens


def _read_double_quoted(line: str, i: int, buf: list[str]) -> int:
    """Append the quoted text starting at ``i`` to ``buf``; return the index after the quote."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == '"':
            return i + 1
        if c == "\\" and i + 1 < n and line[i + 1] in '"\\':
            buf.append(line[i + 1])
            i += 2
        else:
            buf.append(c)
            i += 1
    raise _LineError('unterminated " quote')


def _vars_value(raw: str) -> str:
    """The value of a ``[group:vars]`` line: quotes removed, trailing comment dropped."""
    if raw[:1] in ("'", '"'):
        tokens = _tokenize(raw)
        if len(tokens) != 1:
            raise _LineError("unexpected text after the quoted value")
        return tokens[0]
    match = _COMMENT_AFTER_VALUE_RE.search(raw)
    return raw[: match.start()].rstrip() if match else raw


# --------------------------------------------------------------- values


def _check_name(what: str, name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise _LineError(
            f"invalid {what} {name!r}: use only letters, digits, '_', '.' and '-'"
            + (", and do not start with '-'" if name.startswith("-") else "")
        )
    return name


def _normalise(canon: str, key: str, raw: str) -> str:
    """Validate one known setting where it is written, so the error has the right line."""
    if canon == "machine_types":
        return _normalise_machine_types(raw)
    if not raw:
        raise _LineError(f"{key}= needs a value")
    if raw.startswith("-"):
        raise _LineError(
            f"bad {key} {raw!r}: a value may not start with '-' (the host would read it as an option)"
        )
    if canon == "port":
        return _normalise_port(key, raw)
    if canon == "accel":
        if raw not in ACCELS:
            raise _LineError(f"bad {key} {raw!r}: expected one of {', '.join(ACCELS)}")
    elif canon == "transport":
        if raw not in TRANSPORTS:
            raise _LineError(f"unsupported {key} {raw!r}: fleetcpu connects only with ssh or local")
    elif canon == "pool":
        _check_name("pool name", raw)
    elif canon == "address":
        raw = _normalise_address(key, raw)
    elif canon == "user" and any(c.isspace() or c in "@:" for c in raw):
        raise _LineError(f"bad {key} {raw!r}")
    return raw


def _normalise_address(key: str, raw: str) -> str:
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]  # ssh wants a bare IPv6 address
    if not raw or any(c.isspace() for c in raw):
        raise _LineError(f"bad {key} {raw!r}")
    if any(c in SSH_HOST_FORBIDDEN for c in raw):
        raise _LineError(f"bad {key} {raw!r}: OpenSSH refuses host names holding any of {SSH_HOST_FORBIDDEN}")
    return raw


def _normalise_port(key: str, raw: str) -> str:
    if not _DIGITS_RE.fullmatch(raw) or not 1 <= int(raw) <= 65535:
        raise _LineError(f"bad port {raw!r} ({key}): expected a number from 1 to 65535")
    return str(int(raw))


def _normalise_machine_types(raw: str) -> str:
    if not raw.strip():
        return ""
    names: dict[str, None] = {}
    for item in raw.split(","):
        name = item.strip()
        if not name:
            raise _LineError(f"empty machine type in machine_types={raw!r}")
        names[_check_name("machine type", name)] = None
    return ",".join(names)


# --------------------------------------------------------------- host patterns


def _looks_ipv6(token: str) -> bool:
    candidate = token
    if candidate.startswith("["):
        candidate = candidate[1:].partition("]")[0]
    if "::" in candidate:
        return True
    groups = candidate.split(":")
    # Ranges have at most two colons; a full IPv6 address has seven.
    return len(groups) == 8 and all(_HEX_GROUP_RE.fullmatch(g) for g in groups)


def _ipv6_problem(token: str) -> str:
    bare = token[1:].partition("]")[0] if token.startswith("[") else token
    return (
        f"{token!r} looks like an IPv6 address; host names cannot be IPv6 addresses here, "
        f"so write a name and ansible_host=, e.g. 'myhost ansible_host={bare}'"
    )


def _split_host_token(token: str) -> tuple[str | None, str, str | None]:
    """``[user@]host[:port]`` -> (user, host pattern, port as written)."""
    user: str | None = None
    rest = token
    if "@" in token:
        user, _, rest = token.partition("@")
        if not user:
            raise _LineError(f"empty user before '@' in {token!r}")
        if "@" in rest:
            raise _LineError(f"more than one '@' in {token!r}")
    if _looks_ipv6(rest):
        raise _LineError(_ipv6_problem(rest))
    port: str | None = None
    colon = rest.rfind(":")
    if colon > rest.rfind("]"):  # a colon inside a range's brackets is not a port
        rest, port = rest[:colon], rest[colon + 1 :]
    if not rest:
        raise _LineError(f"empty host name in {token!r}")
    return user, rest, port


def _range_values(body: str) -> list[str]:
    """Expand the inside of one ``[start:end(:step)]``, with Ansible's rules."""
    shown = f"[{body}]"
    fields = body.split(":")
    if len(fields) not in (2, 3):
        raise _LineError(f"bad range {shown}: expected [start:end] or [start:end:step]")
    beg, end = fields[0] or "0", fields[1]  # Ansible reads an empty start as 0
    step = 1
    if len(fields) == 3:
        if not _DIGITS_RE.fullmatch(fields[2]) or int(fields[2]) == 0:
            raise _LineError(f"bad range {shown}: the step must be a positive integer")
        step = int(fields[2])
    if not end:
        raise _LineError(f"bad range {shown}: no end value")
    if _DIGITS_RE.fullmatch(beg) and _DIGITS_RE.fullmatch(end):
        first, last = int(beg), int(end)
        if first > last:
            raise _LineError(f"bad range {shown}: the start is after the end")
        numbers = range(first, last + 1, step)
        if len(numbers) > MAX_EXPANSION:
            raise _LineError(f"range {shown} expands to more than {MAX_EXPANSION} names")
        if beg[0] == "0" and len(beg) > 1:
            if len(beg) != len(end):
                raise _LineError(f"bad range {shown}: a zero-padded range needs start and end of equal width")
            return [str(i).zfill(len(beg)) for i in numbers]
        return [str(i) for i in numbers]
    letters = string.ascii_letters
    if len(beg) == 1 and len(end) == 1 and beg in letters and end in letters:
        first, last = letters.index(beg), letters.index(end)
        if first > last:
            raise _LineError(f"bad range {shown}: the start is after the end")
        return list(letters[first : last + 1 : step])
    raise _LineError(f"bad range {shown}: expected two numbers or two single letters")


def _too_many(cap: int) -> _LineError:
    return _LineError(
        f"the inventory names more than {cap} hosts, the cap on one run; pass --max-hosts N to allow more"
    )


def _expand(pattern: str, cap: int = MAX_EXPANSION) -> list[str]:
    """All host names a pattern stands for, in order; the pattern itself if it has no range."""
    if "[" not in pattern and "]" not in pattern:
        return [_check_name("host name", pattern)]
    parts: list[list[str]] = []
    literal: list[str] = []
    pos = 0
    for match in _RANGE_RE.finditer(pattern):
        literal.append(pattern[pos : match.start()])
        parts.append([pattern[pos : match.start()]])
        parts.append(_range_values(match.group(1)))
        pos = match.end()
    literal.append(pattern[pos:])
    parts.append([pattern[pos:]])
    text = "".join(literal)
    if "[" in text or "]" in text:
        raise _LineError(f"unbalanced '[' or ']' in host pattern {pattern!r}")
    if text and not _NAME_RE.fullmatch(text):
        raise _LineError(
            f"invalid host pattern {pattern!r}: use only letters, digits, '_', '.', '-' "
            "and [start:end] ranges"
        )
    count = math.prod(len(p) for p in parts)
    if count > MAX_EXPANSION:
        raise _LineError(f"host pattern {pattern!r} expands to more than {MAX_EXPANSION} names")
    if count > cap:
        raise _too_many(cap)
    return ["".join(combo) for combo in itertools.product(*parts)]


# --------------------------------------------------------------- the parser


class _Parser:
    """The single pass over the lines; ``finish`` is the resolution pass."""

    def __init__(self, path: str, strict: bool, max_hosts: int = DEFAULT_MAX_HOSTS) -> None:
        self.path = path
        self.strict = strict
        self.max_hosts = max_hosts
        self.group = "ungrouped"
        self.kind = "hosts"
        self.hosts: dict[str, _Host] = {}
        self.defined: dict[str, int] = {"all": 0, "ungrouped": 0}
        self.vars_headers: dict[str, int] = {}
        self.group_vars: dict[str, dict[str, _Set]] = {}
        #: (parent, child, line) in file order.
        self.children: list[tuple[str, str, int]] = []
        #: Unknown key -> (first line, occurrences).
        self.unknown: dict[str, tuple[int, int]] = {}

    def fail(self, line: int, problem: str) -> InventoryError:
        return InventoryError(self.path, line, problem)

    # ---- pass 1

    def feed(self, lineno: int, raw: str) -> None:
        if "\0" in raw:
            raise self.fail(lineno, "a NUL byte in the line: no host can be given such a value")
        line = raw.strip()
        if not line or line[0] in "#;":
            return
        try:
            if line[0] == "[" and self._header(line, lineno):
                return
            if self.kind == "vars":
                self._vars_line(line, lineno)
            elif self.kind == "children":
                self._child_line(line, lineno)
            else:
                self._host_line(line, lineno)
        except _LineError as exc:
            raise self.fail(lineno, exc.problem) from None

    def _header(self, line: str, lineno: int) -> bool:
        """Enter a section; False when the line is a host pattern starting with a range."""
        match = _HEADER_RE.fullmatch(line)
        if match is None:
            first = line.split(None, 1)[0]
            if _looks_ipv6(first):
                raise _LineError(_ipv6_problem(first))
            if "]" not in first or first.endswith("]"):
                raise _LineError(f"malformed section header {line!r}")
            return False
        name, kind = match.group(1), match.group(2)
        kind = "hosts" if kind is None else kind
        _check_name("group name", name)
        if kind not in _SECTION_KINDS:
            raise _LineError(
                f"unknown section type {kind!r} in {line!r}: expected [{name}], "
                f"[{name}:vars] or [{name}:children]"
            )
        if kind == "vars":
            self.vars_headers.setdefault(name, lineno)
        else:
            self.defined.setdefault(name, lineno)
        self.group, self.kind = name, kind
        return True

    def _unknown_key(self, key: str, lineno: int) -> None:
        if self.strict:
            raise _LineError(f"unknown key {key!r} (strict mode refuses keys fleetcpu ignores)")
        first, count = self.unknown.get(key, (lineno, 0))
        self.unknown[key] = (first, count + 1)

    def _setting(self, key: str, raw: str, lineno: int) -> tuple[str, _Set] | None:
        if not _KEY_RE.fullmatch(key):
            raise _LineError(f"invalid key name {key!r}")
        canon = _ALIASES.get(key)
        if canon is None:
            self._unknown_key(key, lineno)
            return None
        if canon == "host_root" and not raw.startswith("/"):
            raise _LineError(f"bad {key} {raw!r}: expected an absolute path")
        return canon, _Set(_normalise(canon, key, raw), lineno, key)

    def _host_line(self, line: str, lineno: int) -> None:
        tokens = _tokenize(line)
        if not tokens:
            return
        pattern = tokens[0]
        if "=" in pattern:
            raise _LineError(
                f"{pattern!r}: a key=value line outside a [group:vars] section "
                f"(the section here is [{self._section()}])"
            )
        settings: dict[str, _Set] = {}
        for token in tokens[1:]:
            key, eq, raw = token.partition("=")
            if not eq:
                raise _LineError(f"expected key=value after the host, got {token!r}")
            found = self._setting(key, raw, lineno)
            if found is not None:
                _merge_same_line(settings, *found)
        user, host, port = _split_host_token(pattern)
        if user is not None:
            _merge_same_line(settings, "user", _Set(_normalise("user", "user@", user), lineno, "user@"))
        if port is not None:
            _merge_same_line(settings, "port", _Set(_normalise_port(":port", port), lineno, ":port"))
        for name in _expand(host, self.max_hosts):
            self._add_host(name, settings, lineno)

    def _add_host(self, name: str, settings: dict[str, _Set], lineno: int) -> None:
        host = self.hosts.get(name)
        if host is None:
            if len(self.hosts) >= self.max_hosts:
                raise _too_many(self.max_hosts)
            host = self.hosts[name] = _Host(name, lineno, dict(settings))
        else:
            for canon, new in settings.items():
                old = host.settings.get(canon)
                if old is None:
                    host.settings[canon] = new
                elif old.value != new.value:
                    raise _LineError(
                        f"host {name!r} is defined again with {new.key}={new.value!r}, "
                        f"but line {old.line} set {old.key}={old.value!r}"
                    )
        host.groups.setdefault(self.group, lineno)

    def _vars_line(self, line: str, lineno: int) -> None:
        key, eq, raw = line.partition("=")
        key = key.strip()
        if not eq:
            raise _LineError(f"expected key=value in [{self.group}:vars], got {line!r}")
        if not key:
            raise _LineError(f"missing key before '=' in {line!r}")
        found = self._setting(key, _vars_value(raw.strip()), lineno)
        if found is None:
            return
        canon, new = found
        group_vars = self.group_vars.setdefault(self.group, {})
        old = group_vars.get(canon)
        if old is not None and old.value != new.value:
            raise _LineError(
                f"[{self.group}:vars] sets {new.key}={new.value!r}, "
                f"but line {old.line} set {old.key}={old.value!r}"
            )
        group_vars.setdefault(canon, new)

    def _child_line(self, line: str, lineno: int) -> None:
        tokens = _tokenize(line)
        if not tokens:
            return
        if any("=" in token for token in tokens):
            raise _LineError(
                f"{line!r}: a key=value line outside a [group:vars] section "
                f"(the section here is [{self._section()}])"
            )
        if len(tokens) != 1:
            raise _LineError(f"expected one group name per line in [{self._section()}]")
        child = _check_name("group name", tokens[0])
        if child == "all":
            raise _LineError("'all' is the root of every group; it cannot be a child")
        self.children.append((self.group, child, lineno))

    def _section(self) -> str:
        return self.group if self.kind == "hosts" else f"{self.group}:{self.kind}"

    # ---- pass 2

    def finish(self) -> Inventory:
        self._check_references()
        parents: dict[str, list[str]] = {}
        for parent, child, _ in self.children:
            if parent not in parents.setdefault(child, []):
                parents[child].append(parent)
        self._check_cycles()
        depth = _depths(self.defined, parents)
        ancestors_of: dict[str, frozenset[str]] = {}
        merged_for: dict[tuple[str, ...], dict[str, _Set]] = {}
        hosts: list[HostSpec] = []
        for host in self.hosts.values():
            direct = tuple(g for g in host.groups if g not in _IMPLICIT_GROUPS)
            merged = merged_for.get(direct)
            if merged is None:
                merged = merged_for[direct] = self._group_settings(
                    direct or ("ungrouped",), parents, depth, ancestors_of
                )
            hosts.append(self._host_spec(host, direct, {**merged, **host.settings}))
        if not hosts:
            raise self.fail(0, "no hosts: the inventory lists no host")
        warnings = tuple(
            f"{self.path}:{line}: unknown key {key!r} ignored"
            + (f" ({count} occurrences)" if count > 1 else "")
            for key, (line, count) in self.unknown.items()
        )
        return Inventory(self.path, tuple(hosts), warnings)

    def _check_references(self) -> None:
        """Undefined groups can only be known at the end; report the first in the file."""
        problems = [
            (
                line,
                f"[{group}:vars] for group {group!r}, which no [{group}] "
                f"or [{group}:children] section defines",
            )
            for group, line in self.vars_headers.items()
            if group not in self.defined
        ]
        problems += [
            (line, f"[{parent}:children] names undefined group {child!r}")
            for parent, child, line in self.children
            if child not in self.defined
        ]
        if problems:
            line, problem = min(problems)
            raise self.fail(line, problem)

    def _check_cycles(self) -> None:
        kids: dict[str, list[tuple[str, int]]] = {}
        for parent, child, line in self.children:
            kids.setdefault(parent, []).append((child, line))
        done: set[str] = set()
        for root in kids:
            if root in done:
                continue
            path = [root]
            on_path = {root}
            stack = [iter(kids.get(root, ()))]
            while stack:
                step = next(stack[-1], None)
                if step is None:
                    stack.pop()
                    done.add(path[-1])
                    on_path.discard(path.pop())
                    continue
                child, line = step
                if child in on_path:
                    cycle = [*path[path.index(child) :], child]
                    raise self.fail(
                        line,
                        "[:children] cycle: " + " -> ".join(cycle) + " (a group cannot be its own ancestor)",
                    )
                if child not in done:
                    path.append(child)
                    on_path.add(child)
                    stack.append(iter(kids.get(child, ())))

    def _group_settings(
        self,
        direct: tuple[str, ...],
        parents: dict[str, list[str]],
        depth: dict[str, int],
        ancestors_of: dict[str, frozenset[str]],
    ) -> dict[str, _Set]:
        """Group vars for one set of direct groups, ordered as Ansible orders them."""
        groups: set[str] = {"all"}
        for group in direct:
            groups |= _ancestors(group, parents, ancestors_of)
        merged: dict[str, _Set] = {}
        for group in sorted(groups, key=lambda g: (depth.get(g, 1), g)):
            merged.update(self.group_vars.get(group, {}))
        return merged

    def _host_spec(self, host: _Host, direct: tuple[str, ...], eff: dict[str, _Set]) -> HostSpec:
        def get(canon: str) -> str | None:
            found = eff.get(canon)
            return None if found is None else found.value

        pool = get("pool")
        if pool is None:
            if len(direct) > 1:
                names = [repr(g) for g in direct]
                raise self.fail(
                    host.groups[direct[1]],
                    f"host {host.name!r} is listed in groups {', '.join(names[:-1])} and "
                    f"{names[-1]}, so its pool is ambiguous: set pool= on the host "
                    "or in one group's [group:vars]",
                )
            pool = direct[0] if direct else DEFAULT_POOL
        port = get("port")
        machine_types = get("machine_types")
        return HostSpec(
            name=host.name,
            address=get("address") or host.name,
            port=None if port is None else int(port),
            user=get("user"),
            pool=pool,
            machine_types=tuple(machine_types.split(",")) if machine_types else (),
            qemu=get("qemu"),
            python=get("python"),
            accel=get("accel") or AccelRequest.AUTO,
            transport=get("transport") or "ssh",
            groups=direct,
            source=f"{self.path}:{host.line}",
            host_root=get("host_root"),
        )


def _merge_same_line(settings: dict[str, _Set], canon: str, new: _Set) -> None:
    old = settings.get(canon)
    if old is not None and old.value != new.value:
        raise _LineError(f"{new.key} {new.value!r} contradicts {old.key} {old.value!r} on the same line")
    settings.setdefault(canon, new)


def _ancestors(group: str, parents: dict[str, list[str]], memo: dict[str, frozenset[str]]) -> frozenset[str]:
    """The group and every group above it (cycles were refused before this runs)."""
    found = memo.get(group)
    if found is not None:
        return found
    # Iterative, so a long chain of :children cannot hit the recursion limit.
    seen = {group}
    todo = [group]
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    memo[group] = result = frozenset(seen)
    return result


def _depths(defined: dict[str, int], parents: dict[str, list[str]]) -> dict[str, int]:
    """Longest distance from ``all``, Ansible's depth: deeper groups' vars win."""
    kids: dict[str, list[str]] = {}
    pending: dict[str, int] = {}
    for group in defined:
        pending[group] = len(parents.get(group, ()))
        for parent in parents.get(group, ()):
            kids.setdefault(parent, []).append(group)
    depth = {group: 0 if group == "all" else 1 for group in defined}
    ready = [group for group, count in pending.items() if count == 0]
    while ready:  # Kahn's topological order over parent -> child edges
        group = ready.pop()
        for child in kids.get(group, ()):
            depth[child] = max(depth[child], depth[group] + 1)
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    return depth


# --------------------------------------------------------------- entry points


def parse_inventory(
    text: str, path: str = "<inventory>", *, strict: bool = False, max_hosts: int = DEFAULT_MAX_HOSTS
) -> Inventory:
    """Parse inventory text; ``path`` only labels messages and ``HostSpec.source``.

    ``strict`` turns unknown keys into errors, for CI jobs that want the
    inventory to say nothing fleetcpu will ignore. ``max_hosts``: the cap on
    distinct hosts (see the module docstring).
    """
    parser = _Parser(path, strict, max_hosts)
    for lineno, raw in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
        parser.feed(lineno, raw)
    return parser.finish()


def load_inventory(
    path: str | os.PathLike[str], *, strict: bool = False, max_hosts: int = DEFAULT_MAX_HOSTS
) -> Inventory:
    """Read and parse a file; an unreadable file is an ``InventoryError`` (exit 3) too."""
    shown = os.fspath(path)
    try:
        with open(shown, encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise InventoryError(shown, 0, "no such file") from None
    except IsADirectoryError:
        raise InventoryError(shown, 0, "is a directory, not an inventory file") from None
    except PermissionError:
        raise InventoryError(shown, 0, "permission denied") from None
    except UnicodeDecodeError as exc:
        raise InventoryError(shown, 0, f"not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise InventoryError(shown, 0, f"cannot read: {exc.strerror or exc}") from None
    return parse_inventory(text, shown, strict=strict, max_hosts=max_hosts)
