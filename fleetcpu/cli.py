"""The ``fleetcpu`` command line: parse, call, render, map errors to exit codes.

Commands import their implementation lazily: ``fleetcpu probe`` runs on
hosts and in tight loops and must never pay for pandas, pyarrow or asyncssh
(a test checks it). Every ``FleetcpuError`` becomes ``error: <message>`` on
one stderr line and its own exit code; anything else is a bug (exit 1).
"""

from __future__ import annotations

import functools
import os
import sys
import typing
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from . import __version__, speed
from .errors import FleetcpuError, InterruptedByUserError
from .vocabulary import Accel

__all__ = [
    "F",
    "adopt",
    "baseline",
    "blockers",
    "check",
    "collect",
    "entry",
    "fail",
    "fsck",
    "hosts",
    "import_",
    "main",
    "probe",
    "report",
    "status",
    "verify",
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: FleetcpuError) -> NoReturn:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(exc.exit_code)


def _mapped(call: Callable[[], Any]) -> Any:
    """Run ``call`` with the error tree (and Ctrl-C, a closed pipe, a bug) turned into one
    stderr line and an exit code. The group calls every command through it
    (``_Main.invoke``), so no command can forget it; click's own errors (usage,
    ``--help``'s exit) pass through to click."""
    try:
        return call()
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except FleetcpuError as exc:
        fail(exc)
    except KeyboardInterrupt:
        fail(InterruptedByUserError("interrupted"))
    except BrokenPipeError:
        # `fleetcpu hosts | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        if _interrupt_inside(exc):
            fail(InterruptedByUserError("interrupted"))
        if os.environ.get("FLEETCPU_DEBUG"):
            raise
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc} (set FLEETCPU_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(1)


def _interrupt_inside(exc: BaseException) -> bool:
    """Whether a signal's KeyboardInterrupt is what ``exc`` wraps.

    Python re-raises some exceptions as another: one raised in a descriptor's
    ``__set_name__`` while a class is created (a dataclass field, during a lazy
    import) comes out as ``RuntimeError: Error calling __set_name__``, its cause
    the KeyboardInterrupt. A SIGTERM landing there was "internal error", exit 1
    (the full gate caught it once); it is an interruption, 130.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__  # only what raised it, not what it met while being handled
    return False


def entry() -> None:
    """The console script: the CLI without pandas and ended without teardown (``fleetcpu.speed``),
    and without the third-party warnings listed in ``fleetcpu.probe.quiet``."""
    status = 0
    try:
        from .probe import quiet

        # Inside the try: a signal is a KeyboardInterrupt from launch's handlers on,
        # and the first lines here run in that window too (the full gate caught one
        # raised inside quiet.install's warnings filter, as a traceback).
        quiet.install()
        speed.block_data_libraries()
        main()
    except KeyboardInterrupt:  # between the signal handlers' start and click's
        click.echo("error: interrupted", err=True)
        status = InterruptedByUserError.exit_code
    except SystemExit as exc:
        if isinstance(exc.code, int):
            status = exc.code
        elif exc.code is not None:
            sys.stderr.write(f"{exc.code}\n")
            status = 1
    speed.exit_process(status)


class _Main(click.Group):
    """The one error edge. click's own Ctrl-C handling prints ``Aborted!`` and exits 1;
    fleetcpu's is exit 130 with ``error: interrupted``, whenever it comes (while parsing
    the command line too). Every command runs inside ``_mapped`` (``invoke``)."""

    def invoke(self, ctx: click.Context) -> Any:
        return _mapped(lambda: super(_Main, self).invoke(ctx))

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except (click.exceptions.Abort, KeyboardInterrupt):
            fail(InterruptedByUserError("interrupted"))
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fleetcpu")
def main() -> None:
    """Which guest CPU model can every host of a KVM migration pool run? Measured, stored, proven."""


def _probe_flags(func: F) -> F:
    """``fleetcpu probe``'s options, built from the probe's one table of flags (``probe.flags``)."""
    from .probe.flags import FLAGS

    for flag in reversed(FLAGS):
        kind: Any = flag.kind
        if flag.choices:
            kind = click.Choice(flag.choices)
        elif flag.positive:
            kind = click.FloatRange(min=0, min_open=True)
        func = click.option(
            flag.name,
            flag.dest,
            type=kind,
            multiple=flag.repeat,
            default=flag.default,
            show_default=flag.default not in (None, ()),
            metavar=flag.metavar,
            help=flag.help,
        )(func)
    return func


@main.command()
@_probe_flags
def probe(**flags: Any) -> None:
    """Probe this host's QEMU and print one JSON probe document (schema fleetcpu.probe/1)."""
    from .probe import probe_and_print

    sys.exit(probe_and_print(flags))


_STORE_OPTION = click.option(
    "--store",
    "store_dir",
    metavar="DIR",
    default=None,
    help="The store (default: $FLEETCPU_STORE, else $XDG_DATA_HOME/fleetcpu).",
)


_STRICT_RUN = click.option(
    "--strict",
    is_flag=True,
    help="Exit 26 also for members of a pool with an adopted CPU that failed, ran under "
    "another accelerator (tcg-only) or could not be judged (undecided).",
)


@main.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--pool", metavar="P", default=None, help="Pool of the host(s) (default: default).")
@click.option(
    "--host", "host", metavar="NAME", default=None, help="Host identity (default: the document's hostname)."
)
@click.option(
    "--collected-now",
    is_flag=True,
    help="Date the runs now, not by the documents' own time (kept as probe_time): "
    "for demo and test documents; stored as command 'import --collected-now'.",
)
@_STORE_OPTION
@_STRICT_RUN
def import_(
    files: tuple[str, ...],
    pool: str | None,
    host: str | None,
    collected_now: bool,
    store_dir: str | None,
    strict: bool,
) -> None:
    """Store probe documents made offline (`fleetcpu probe > host.json`), one run per file.

    Every file is validated first: one bad file rejects them all (exit 3) and nothing is stored.
    Exit 26: some member cannot run its pool's adopted CPU (--strict: or its document failed,
    ran under another accelerator, or could not be judged).
    """
    from .contract.shell import ComplianceRecorder, offending_message, summary_lines
    from .errors import NonCompliantError
    from .store import resolve_location
    from .store.importer import import_files
    from .store.schema import COMPLIANCE

    recorders: list[ComplianceRecorder] = []

    def judging(store: Any) -> Callable[[Any, Any], None]:
        recorder = ComplianceRecorder.load(store)
        recorders.append(recorder)

        def judge(writer: Any, outcome: Any) -> None:
            if recorder.active:
                rows = recorder.rows(outcome, writer.run_id)
                if rows:
                    writer.add_rows(COMPLIANCE, rows)

        return judge

    for item in import_files(
        resolve_location(store_dir), files, pool=pool, host=host, collected_now=collected_now, hook=judging
    ):
        click.echo(f"{item.path}: host {item.host}, {item.status}, run {item.run_id}")
    judged = [c for r in recorders for c in r.judged]
    for line in summary_lines(judged):
        click.echo(line)
    message = offending_message(judged, strict)
    if message is not None:
        raise NonCompliantError(message)


@main.command()
@click.option("--pool", metavar="P", default=None, help="Only this pool's hosts.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_STORE_OPTION
def hosts(pool: str | None, fmt: str, store_dir: str | None) -> None:
    """The latest state of every host: status, failure stage and error, accelerator, QEMU."""
    import json

    from .errors import NoUsableDataError
    from .store import Store, resolve_location
    from .store.listing import host_json, hosts_table

    store = Store.open(resolve_location(store_dir))
    states = store.latest()
    if not states:
        raise NoUsableDataError(f"{store.root}: store is empty: run fleetcpu collect or import first")
    if pool is not None:
        states = store.latest(pool)
    if fmt == "json":
        click.echo(json.dumps([host_json(s) for s in states], indent=2))
    else:
        click.echo(hosts_table(states))


@main.command()
@_STORE_OPTION
def fsck(store_dir: str | None) -> None:
    """Check every committed run's files against its commit record (rows, bytes, sha256) and
    list every file that no committed run lists. Repairs nothing.

    Exit 0: clean (runs from before file lists are listed as unverified); 4: a committed
    run's file is missing, replaced or damaged; 7: no damage, but stray files.
    """
    from .errors import StoreCorruptError, StrayFilesError
    from .store import Store, resolve_location
    from .store.fsck import fsck as check
    from .store.fsck import render

    store = Store.open(resolve_location(store_dir))
    report = check(store.layout)
    for line in render(report):
        click.echo(line)
    if report.damaged:
        runs = len({d.run_id for d in report.damaged})
        raise StoreCorruptError(
            f"{store.root}: {runs} committed run(s) damaged "
            f"({len(report.damaged)} file(s)); see the list above"
        )
    if report.stray:
        raise StrayFilesError(
            f"{store.root}: {len(report.stray)} stray file(s), part of no "
            "committed run; fleetcpu ignores them, other engines may not"
        )


def _transport_options(verb: str) -> Callable[[F], F]:
    """collect's SSH and fan-out flags, shared with ``verify`` (same transport, same guarantees)."""
    options = [
        click.option(
            "--concurrency",
            type=click.IntRange(1, 4096),
            default=32,
            show_default=True,
            metavar="N",
            help=f"Hosts {verb} at once. 32 keeps a 2-core orchestrator busy while hosts "
            "run QEMU, far below the fd limit, and gentle on a shared bastion's sshd.",
        ),
        click.option(
            "--user",
            metavar="U",
            default=None,
            help="SSH user for hosts whose inventory (or stored spec) sets none "
            "(default: ssh_config, else you).",
        ),
        click.option(
            "-i",
            "identity_files",
            multiple=True,
            metavar="KEY",
            help="SSH private key (repeatable); the agent is used as well.",
        ),
        click.option(
            "--ssh-config",
            metavar="PATH",
            default=None,
            help="OpenSSH client config to honour (default: ~/.ssh/config).",
        ),
        click.option(
            "--known-hosts",
            "known_hosts",
            multiple=True,
            metavar="PATH",
            help="known_hosts file(s), read once (default: ~/.ssh/known_hosts and "
            "/etc/ssh/ssh_known_hosts); new keys are added to the first.",
        ),
        click.option(
            "--accept-new-host-keys",
            is_flag=True,
            help="Trust a host's key on first use and add it to known_hosts. "
            "A changed key is always refused.",
        ),
        click.option(
            "--connect-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=10.0,
            show_default=True,
            metavar="S",
            help="Per attempt: TCP connect, key exchange and authentication.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=90.0,
            show_default=True,
            metavar="S",
            help="Per host: the remote command (the probe gets a slightly shorter deadline).",
        ),
        click.option(
            "--retries",
            type=click.IntRange(0, 10),
            default=2,
            show_default=True,
            metavar="N",
            help="Retries of refused, reset or timed-out connections (backoff with jitter).",
        ),
        click.option(
            "--strict-inventory", is_flag=True, help="Unknown inventory keys are errors, not warnings."
        ),
        click.option(
            "--max-hosts",
            type=click.IntRange(1),
            default=100_000,
            show_default=True,
            metavar="N",
            help="Refuse an inventory naming more hosts (exit 3, before any host is "
            "contacted): a typo such as h[0:999999] is caught, not probed.",
        ),
    ]

    def apply(func: F) -> F:
        @functools.wraps(func)
        def with_options(*args: Any, **kwargs: Any) -> Any:
            return func(*args, options=_collect_options(kwargs), **kwargs)

        wrapped: Any = with_options
        for option in reversed(options):
            wrapped = option(wrapped)
        return typing.cast(F, wrapped)

    return apply


def _collect_options(flags: dict[str, Any]) -> Any:
    """Pop the flags of ``_transport_options`` out of ``flags`` as collect's ``FleetOptions``."""
    from .fleet.options import FleetOptions
    from .fleet.ssh import SshSettings

    ssh_config = flags.pop("ssh_config")
    ssh = SshSettings(
        user=flags.pop("user"),
        identity_files=flags.pop("identity_files"),
        ssh_config=(ssh_config,) if ssh_config is not None else None,
        known_hosts=flags.pop("known_hosts"),
        accept_new_host_keys=flags.pop("accept_new_host_keys"),
        connect_timeout=flags.pop("connect_timeout"),
    )
    return FleetOptions(
        concurrency=flags.pop("concurrency"),
        timeout=flags.pop("timeout"),
        retries=flags.pop("retries"),
        ssh=ssh,
        strict_inventory=flags.pop("strict_inventory"),
        max_hosts=flags.pop("max_hosts"),
    )


@main.command()
@click.argument("inventory", metavar="INVENTORY")
@_STORE_OPTION
@_transport_options("probed")
@_STRICT_RUN
def collect(inventory: str, store_dir: str | None, strict: bool, options: Any) -> None:
    """Probe every host of INVENTORY (over SSH, or locally) and store one row per host.

    Failures are stored too, with their stage (connect, hostkey, auth, python, facts, qemu, timeout,
    output...). Exit 0: all hosts ok; 5: some failed; 6: all failed; 3: bad inventory; 26: some
    member cannot run its pool's adopted CPU (--strict: or failed, tcg-only, undecided), before 5.
    """
    from .collect.collect_fleet import run_collect

    run_collect(inventory, options, store_dir=store_dir, strict=strict)


# --------------------------------------------------------------------------- baseline
#: ``fleetcpu.export.FORMATS`` (a test keeps them equal): listed here so that
#: defining the command imports nothing of the baseline.
_BASELINE_FORMATS = ("qemu", "json", "readconfig", "libvirt", "nova", "kubevirt", "proxmox")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_age(_ctx: click.Context | None, _param: click.Parameter | None, value: str) -> Any:
    """``7d``, ``36h``, ``90m``, ``2w``, ``3600s``; a bare number is days."""
    import datetime
    import re

    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value)
    if found is None:
        raise click.BadParameter(f"{value!r}: expected a number with s, m, h, d or w (e.g. 7d)")
    seconds = float(found.group(1)) * _AGE_UNITS[found.group(2) or "d"]
    return datetime.timedelta(seconds=seconds)


def _accel_option(help: str | None = "Use only data probed with this accelerator.") -> Callable[[F], F]:
    """``--accel``, the vocabulary's accelerators, KVM by default: one declaration for every command."""
    return click.option(
        "--accel", type=click.Choice(Accel.values()), default="kvm", show_default=True, help=help
    )


_REQUIRE_OPTION = click.option(
    "--require",
    "require",
    multiple=True,
    metavar="R,...",
    help="Features (QEMU's names: md-clear, avx2) and x86-64 levels (x86-64-v1..x86-64-v4) the "
    "pool's CPU must have; exit 27 names what is lacking, where, and which hosts to leave out.",
)


def _requirement(require: tuple[str, ...]) -> Any:
    """``--require``'s items as a ``Requirement`` (exit 2 for a name that is neither)."""
    from .probe.abi_level import requirement

    return requirement(require)


def _pool_query(*between: Callable[[F], F]) -> Callable[[F], F]:
    """The data-selection and policy flags of ``baseline``, ``blockers`` and ``check``, declared once.

    The command gets them as one ``query`` (a ``_PoolQuery``); ``between`` are the
    command's own options, listed after these and before ``--store``.
    """
    options: list[Callable[[Any], Any]] = [
        click.option("--pool", required=True, metavar="P", help="The pool (as named in the inventory)."),
        _accel_option(),
        click.option(
            "--machine-type",
            metavar="T",
            default=None,
            help="Machine type (default: the pool's declared one, else the newest probed on every member).",
        ),
        click.option(
            "--max-age",
            default="7d",
            show_default=True,
            metavar="AGE",
            callback=_parse_age,
            help="Older data is reported missing (stale): 90m, 36h, 7d, 2w.",
        ),
        click.option("--strict", is_flag=True, help="Any missing member is an error (exit 21)."),
        click.option(
            "--nested",
            is_flag=True,
            help="Keep vmx/vmx-*/svm features, if every member reports KVM nesting enabled.",
        ),
        click.option(
            "--allow-non-migratable",
            is_flag=True,
            help="Keep invtsc (QEMU then refuses to live-migrate the guest).",
        ),
        click.option("--no-kvm-pv", is_flag=True, help="Drop every KVM paravirtual feature."),
        click.option("--no-tsx", is_flag=True, help="Drop hle/rtm even when every member offers them."),
        *between,
        _STORE_OPTION,
    ]

    def apply(func: F) -> F:
        @functools.wraps(func)
        def with_query(*args: Any, **kwargs: Any) -> Any:
            query = _PoolQuery(**{name: kwargs.pop(name) for name in _PoolQuery._fields})
            return func(*args, query=query, **kwargs)

        wrapped: Any = with_query
        for option in reversed(options):
            wrapped = option(wrapped)
        return typing.cast(F, wrapped)

    return apply


class _PoolQuery(typing.NamedTuple):
    """The flags of ``_pool_query``: which members, and under which policy."""

    pool: str
    accel: str
    machine_type: str | None
    max_age: Any
    strict: bool
    nested: bool
    allow_non_migratable: bool
    no_kvm_pv: bool
    no_tsx: bool
    store_dir: str | None

    def select(self) -> Any:
        """(store, selection, policy): the members as ``baseline`` computes them, for all three."""
        from .baseline import Policy
        from .baseline.select import select_members
        from .store import Store, resolve_location

        store = Store.open(resolve_location(self.store_dir))
        chosen = select_members(
            store,
            self.pool,
            accel=self.accel,
            machine_type=self.machine_type,
            max_age=self.max_age,
            strict=self.strict,
        )
        policy = Policy(
            non_migratable=self.allow_non_migratable,
            nested=self.nested,
            kvm_pv=not self.no_kvm_pv,
            tsx=not self.no_tsx,
        )
        return store, chosen, policy


@main.command()
@_pool_query(
    click.option(
        "--format",
        "fmt",
        type=click.Choice(_BASELINE_FORMATS),
        default="qemu",
        show_default=True,
        help="qemu: the two -cpu strings; json: fleetcpu.baseline/1; "
        "readconfig, libvirt, nova, kubevirt, proxmox: see docs/export.md.",
    ),
    click.option(
        "--libvirt-cpu-map",
        metavar="DIR",
        default=None,
        help="cpu_map for --format libvirt|nova|kubevirt (default: /usr/share/libvirt/cpu_map).",
    ),
    _REQUIRE_OPTION,
)
def baseline(query: _PoolQuery, fmt: str, libvirt_cpu_map: str | None, require: tuple[str, ...]) -> None:
    """The richest guest CPU every member of POOL can run, from the store; nothing is written.

    Prints the named form (a CPU model plus explicit changes) and the custom
    form (base with every feature and scalar explicit); warnings go to stderr.
    Exit 27: the CPU lacks a feature --require asks (what, where, and which hosts to leave out).
    """
    from .baseline import compute_baseline
    from .baseline.require import meet
    from .export import render

    needed = _requirement(require)
    _store, chosen, policy = query.select()
    result = compute_baseline(
        query.pool,
        chosen.machine_type,
        query.accel,
        chosen.members,
        policy,
        missing=chosen.missing,
        notices=chosen.notices,
    )
    meet(result, chosen.members, needed)
    out = render(result, fmt, _render_options(fmt, libvirt_cpu_map))
    click.echo(out.stderr, err=True, nl=False)
    click.echo(out.stdout, nl=False)


# --------------------------------------------------------------------------- verify
#: ``fleetcpu.verify.report.FORMATS``; listed here so defining the command imports nothing of it.
_VERIFY_FORMATS = ("table", "json")


@main.command()
@click.option("--pool", required=True, metavar="P", help="The pool (as named in the inventory).")
@click.argument("inventory", metavar="[INVENTORY]", required=False)
@click.option(
    "--machine-type", metavar="T", default=None, help="Machine type to start (default: the pool baseline's)."
)
@click.option(
    "--cpu",
    metavar="STRING",
    default=None,
    help="The -cpu string to verify (default: the pool's computed named CPU); ',enforce' is always added.",
)
@_accel_option("Accelerator to start the CPU with, and of the data the baseline uses.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_VERIFY_FORMATS),
    default="table",
    show_default=True,
    help="table, or json: fleetcpu.verify-report/1.",
)
@_STORE_OPTION
@_transport_options("verified")
def verify(
    pool: str,
    inventory: str | None,
    machine_type: str | None,
    cpu: str | None,
    accel: str,
    fmt: str,
    store_dir: str | None,
    options: Any,
) -> None:
    """Start the pool's CPU with enforce on every member; all must start it and present the same CPU.

    Hosts: INVENTORY's members of the pool, else the connection specs stored at collect.
    The result is stored as a run of its own (command verify, table verify).
    Exit 0: every member passed; 24: some did not (refused, filtered, differs, unverified,
    failed); 20-23 as baseline, before any host is contacted.
    """
    from .verify.verify_fleet import run_verify

    run_verify(
        pool,
        options,
        inventory=inventory,
        store_dir=store_dir,
        accel=accel,
        machine_type=machine_type,
        cpu=cpu,
        fmt=fmt,
    )


# --------------------------------------------------------------------------- explain and export
def _render_options(fmt: str, cpu_map_dir: str | None) -> Any:
    """What ``--format fmt`` needs besides the baseline: the cpu_map, read here (I/O at the edge)."""
    from .errors import UsageError
    from .export import NEEDS_CPU_MAP, RenderOptions
    from .libvirt import SYSTEM_CPU_MAP, load_cpu_map

    if fmt not in NEEDS_CPU_MAP:
        if cpu_map_dir is not None:
            raise UsageError(
                f"--libvirt-cpu-map applies to --format {'|'.join(sorted(NEEDS_CPU_MAP))}, not {fmt}"
            )
        return RenderOptions()
    return RenderOptions(cpu_map=load_cpu_map(cpu_map_dir or SYSTEM_CPU_MAP))


_TABLE_OR_JSON = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@main.command()
@_pool_query(_TABLE_OR_JSON)
def blockers(query: _PoolQuery, fmt: str) -> None:
    """Why POOL's CPU is what it is: every feature and model it does not get, the hosts
    blocking each, and what the pool would gain without each group of identical hosts."""
    from .explain import explain_blockers
    from .explain.printout import blockers_json, blockers_table, dumps

    _store, chosen, policy = query.select()
    found = explain_blockers(
        query.pool,
        chosen.machine_type,
        query.accel,
        chosen.members,
        policy,
        missing=chosen.missing,
        notices=chosen.notices,
    )
    click.echo(dumps(blockers_json(found)) if fmt == "json" else blockers_table(found), nl=False)


@main.command()
@click.argument("host", metavar="HOST|PROBE.json")
@_pool_query(_TABLE_OR_JSON)
def check(host: str, query: _PoolQuery, fmt: str) -> None:
    """Can HOST (a stored host, or a probe document not stored) join POOL without lowering
    its CPU? Exit 0 if it can, 25 if it cannot (what it would take away is printed)."""
    from .errors import CheckRefusedError
    from .explain import check_join
    from .explain.candidate import load_candidate
    from .explain.check import refused
    from .explain.printout import check_json, check_table, dumps

    store, chosen, policy = query.select()
    pool, accel = query.pool, query.accel
    candidate = load_candidate(store, host, chosen.machine_type, accel, query.max_age)
    if candidate.member is None:
        assert candidate.refusal is not None
        member = candidate.host in {m.host for m in chosen.members}
        result = refused(
            pool,
            chosen.machine_type,
            accel,
            candidate.host,
            candidate.source,
            member,
            candidate.refusal,
            chosen.missing,
        )
    else:
        result = check_join(
            pool,
            chosen.machine_type,
            accel,
            chosen.members,
            candidate.member,
            policy,
            source=candidate.source,
            missing=chosen.missing,
        )
    click.echo(dumps(check_json(result)) if fmt == "json" else check_table(result), nl=False)
    if not result.can_join:
        raise CheckRefusedError(result.summary())


# --------------------------------------------------------------------------- the contract
@main.command()
@click.option("--pool", required=True, metavar="P", help="The pool (as named in the inventory).")
@click.option(
    "--cpu",
    metavar="STRING",
    default=None,
    help="Adopt this -cpu string (e.g. the one in your Nova or libvirt configs) "
    "instead of today's baseline; every member must provably start it.",
)
@click.option(
    "--machine-type", metavar="T", default=None, help="Machine type (default: as for fleetcpu baseline)."
)
@_accel_option(None)
@click.option(
    "--max-age",
    default="7d",
    show_default=True,
    metavar="AGE",
    callback=_parse_age,
    help="Older data is not consulted (stale).",
)
@click.option("--note", metavar="TEXT", default=None, help="Why (stored with the adoption).")
@_REQUIRE_OPTION
@click.option("--yes", is_flag=True, help="Record without asking (required without a terminal).")
@_STORE_OPTION
def adopt(
    pool: str,
    cpu: str | None,
    machine_type: str | None,
    accel: str,
    max_age: Any,
    note: str | None,
    require: tuple[str, ...],
    yes: bool,
    store_dir: str | None,
) -> None:
    """Record POOL's CPU as its contract: today's baseline, or --cpu STRING.

    Shows the change from the previous adoption and asks before recording (unless --yes).
    Every later collect and import judges members against it (exit 26: some cannot run it).
    Exit 27: the CPU lacks a feature --require asks; nothing is recorded.
    """
    from .contract.shell import plan_adoption, record_adoption
    from .errors import UsageError
    from .store import Store, resolve_location

    store = Store.open(resolve_location(store_dir))
    needed = _requirement(require)
    plan = plan_adoption(
        store,
        pool,
        cpu=cpu,
        machine_type=machine_type,
        accel=accel,
        note=note,
        max_age=max_age,
        require=needed,
    )
    a = plan.adoption
    click.echo(f"pool {pool}: adopt {a.cpu}")
    from .probe.abi_level import level_of

    level = level_of(a.features) or "below x86-64-v1"
    click.echo(
        f"  {len(a.features)} features, {level}, {a.machine_type} ({a.accel}), "
        f"from {len(a.members)} member(s)"
    )
    if needed:
        click.echo(f"  meets --require {needed.text()}")
    for line in plan.lines:
        click.echo(f"  {line}")
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not a terminal: pass --yes to record the adoption")
        if not click.confirm("Record this adoption?", default=False):
            click.echo("nothing recorded", err=True)
            return
    done = record_adoption(store, plan)
    click.echo(f"adopted {done.adoption_id} for pool {pool}")


@main.command()
@click.option("--pool", metavar="P", default=None, help="Only this pool (default: every pool).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "prometheus"]),
    default="table",
    show_default=True,
    help="json: fleetcpu.status/1; prometheus: text exposition format.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="failed, stale, tcg-only and undecided members count as non-compliant (26).",
)
@click.option(
    "--max-age",
    default="7d",
    show_default=True,
    metavar="AGE",
    callback=_parse_age,
    help="Older data makes a member stale.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    default=None,
    help="Write to FILE atomically (temporary file, then rename), e.g. "
    "/var/lib/node_exporter/textfile/fleetcpu.prom; default: stdout.",
)
@_STORE_OPTION
def status(
    pool: str | None, fmt: str, strict: bool, max_age: Any, output: str | None, store_dir: str | None
) -> None:
    """Each pool's adopted CPU, its members by state, and the headroom over it.

    Exit 0: every member complies; 26: some do not (--strict: or are failed, stale,
    tcg-only, undecided); 20: unknown pool; 21: no adopted CPU and no data.
    """
    import datetime
    from pathlib import Path

    from .contract.prometheus import render
    from .contract.shell import pool_statuses, write_textfile
    from .contract.status import status_json, status_table, status_text
    from .errors import NonCompliantError, NoUsableDataError
    from .store import Store, resolve_location

    store = Store.open(resolve_location(store_dir))
    now = datetime.datetime.now(datetime.UTC)
    statuses = pool_statuses(store, pool, max_age=max_age, now=now)
    if not statuses:
        raise NoUsableDataError(f"{store.root}: no pool has data or an adopted CPU")
    if fmt == "json":
        text = status_text(status_json(statuses, now))
    elif fmt == "prometheus":
        text = render(statuses)
    else:
        text = status_table(statuses, now)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_textfile(Path(output), text)
    if pool is not None and statuses[0].adoption is None and not statuses[0].last_collect:
        raise NoUsableDataError(f"pool {pool!r}: no adopted CPU and no usable data")
    bad = [m.host for s in statuses for m in s.offending(strict)]
    if bad:
        raise NonCompliantError(
            f"{len(bad)} member(s) cannot be shown to run their pool's "
            f"adopted CPU: {', '.join(bad[:10])}" + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        )


# --------------------------------------------------------------------------- report
@main.command()
@click.option("--pool", required=True, metavar="P", help="The pool (as named in the inventory).")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    default=None,
    help="Where to write the HTML (default: fleetcpu-report-POOL.html; - for stdout).",
)
@_accel_option()
@click.option(
    "--machine-type", metavar="T", default=None, help="Machine type (default: as for fleetcpu baseline)."
)
@click.option(
    "--max-age",
    default="7d",
    show_default=True,
    metavar="AGE",
    callback=_parse_age,
    help="Older data is reported missing (stale).",
)
@click.option(
    "--history",
    default="30d",
    show_default=True,
    metavar="AGE",
    callback=_parse_age,
    help="How far back drift and failures look.",
)
@_STORE_OPTION
def report(
    pool: str,
    output: str | None,
    accel: str,
    machine_type: str | None,
    max_age: Any,
    history: Any,
    store_dir: str | None,
) -> None:
    """POOL's summary, feature coverage, model usability, blockers and drift as one
    self-contained HTML file (figures embedded, nothing fetched from the network).
    Missing data (empty store, failed hosts, a single run) is reported in the file."""
    # The one command built on pandas (fleetcpu.analysis): lift the block before
    # pyarrow is imported (it looks for numpy once, at import).
    speed.allow_data_libraries()
    os.environ.setdefault("MPLBACKEND", "Agg")
    from pathlib import Path

    from .analysis.html_report import build_report
    from .errors import NoUsableDataError, UsageError
    from .store import Store, resolve_location
    from .store.atomic import write_bytes

    root = Path(resolve_location(store_dir))
    try:
        store: Store | None = Store.open(root)
    except NoUsableDataError:
        store = None  # missing or empty: the report says so
    text, data, secs = build_report(
        store, pool, root=root, accel=accel, machine_type=machine_type, max_age=max_age, history=history
    )
    target = output or f"fleetcpu-report-{pool}.html"
    if target == "-":
        click.echo(text, nl=False)
    else:
        try:
            write_bytes(Path(target), text.encode())
        except OSError as exc:
            raise UsageError(f"cannot write the report to {target}: {exc.strerror or exc}") from exc
    figures = sum(s.image is not None for s in secs)
    gaps = [s.title for s in secs if s.missing]
    click.echo(
        f"{target}: pool {pool}, {len(data.members)} member(s), {figures} figure(s)"
        + (f"; missing data in: {', '.join(gaps)}" if gaps else ""),
        err=True,
    )
    if data.problem:
        click.echo(f"warning: {data.problem}", err=True)
