"""``fleetcpu collect``: inventory -> one probe per host -> one stored row per host -> exit code.

The order is the contract:

1. Parse the inventory. A malformed one is an ``InventoryError`` (exit 3)
   before anything else happens: no store touched, no host contacted.
2. Build the transports (load ``-i`` keys, read known_hosts once, check
   ``--ssh-config``) and the bundle: a bad flag is a ``UsageError`` (exit 2),
   still before any host is contacted.
3. Open the store and a run writer, and prove the run can be stored (the
   folders are folders, room for a first batch is really written): a
   read-only, full or misshapen store is exit 4 before any host is
   contacted. Then fan out. Each host's outcome goes into the writer the
   moment it is known (memory stays flat for 10,000 hosts), failures
   included: a failure is a row with its stage, never an exception.
4. Summary, then the exit code: 0 all ok, 5 some failed, 6 all failed. A
   store that fails later (disk full mid-run, a lock held too long) is exit
   4 after the summary, and the message says whether the run is stored.

Interruption (Ctrl-C, SIGTERM) is handled here and only here: the hosts in
flight are stopped by their transports (EOF, SIGTERM, grace), recorded as
``interrupted``, the run is committed as interrupted, and the CLI exits 130.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from ..errors import (
    AllHostsFailedError,
    InterruptedByUserError,
    NonCompliantError,
    SomeHostsFailedError,
    StoreError,
    StoreLockedError,
    StoreWriteError,
)
from ..fleet import bootstrap
from ..fleet.bundle import Bundle, load_bundle
from ..fleet.fanout import RetryPolicy, fan_out, term_cancels_run, within_deadline
from ..fleet.inventory import HostSpec, Inventory, load_inventory
from ..fleet.options import FleetOptions, build_transports
from ..fleet.progress import InFlight, Progress, Tally
from ..fleet.remote_run import HostFailure
from ..fleet.transport import Transport
from ..outcome import ConnectionSpec, HostOutcome
from ..probe.document import ProbeDocument
from ..probe.document_decoder import DocumentDecoder
from ..vocabulary import Stage
from .probe_reply import interpret

if TYPE_CHECKING:
    from ..contract.shell import ComplianceRecorder
    from ..store import RunWriter

__all__ = [
    "TICK_S",
    "CollectResult",
    "Collector",
    "connection_spec",
    "raise_exit_code",
    "run_collect",
]


@dataclass
class CollectResult:
    tally: Tally
    elapsed: float
    run_id: str | None = None
    accepted_keys: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: The store failed after hosts were contacted; ``stored``: its commit record is written.
    store_error: StoreError | None = None
    stored: bool = False
    #: Hosts in the run's committed parts (layout 2), whatever failed after them.
    hosts_committed: int = 0
    #: Judges members of pools with an adopted CPU (empty when no pool has one).
    #: Loaded with the store (lazily: pyarrow is not imported before the inventory is read).
    compliance: ComplianceRecorder | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def connection_spec(host: HostSpec, default_user: str | None) -> ConnectionSpec:
    """How the host was reached (inventory values and --user); never keys. None: ssh's default."""
    if host.transport == "local":
        return ConnectionSpec("local", python=host.python, qemu=host.qemu)
    return ConnectionSpec(
        "ssh",
        address=host.address,
        port=host.port,
        user=host.user or default_user,
        python=host.python,
        qemu=host.qemu,
    )


class Collector:
    """Probes hosts and hands over one ``HostOutcome`` each; knows nothing of the store."""

    def __init__(
        self,
        options: FleetOptions,
        transports: dict[str, Transport],
        bundle: Bundle,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.options = options
        self.transports = transports
        self.payload = bootstrap.payload(bundle)
        self.retry = retry or options.retry_policy()
        self.host_deadline = options.host_deadline(self.retry)
        #: This run's document decoder: hosts of one CPU and QEMU share their records.
        self.decoder = DocumentDecoder()

    def outcome(
        self,
        host: HostSpec,
        started: float,
        *,
        document: ProbeDocument | None = None,
        stage: str | None = None,
        error: str | None = None,
        code: str | None = None,
        stderr_tail: str = "",
        banner: int = 0,
    ) -> HostOutcome:
        return HostOutcome(
            host=host.name,
            pool=host.pool,
            collected_at=_now(),
            document=document,
            connection=connection_spec(host, self.options.ssh.user),
            stage=stage,
            error=error,
            error_code=code,
            stderr_tail=stderr_tail,
            duration_s=round(time.monotonic() - started, 4),
            declared_machine_types=host.machine_types,
            banner=banner,
        )

    async def probe_host(self, host: HostSpec) -> HostOutcome:
        """One host, start to finish; every way it can go wrong ends as a failed outcome."""
        started = time.monotonic()
        transport = self.transports[host.transport]
        python = host.python or bootstrap.DEFAULT_PYTHON
        command = bootstrap.remote_command(host.python, bootstrap.probe_args(host, self.options.timeout))
        try:
            run = await within_deadline(
                lambda: transport.run(host, command, self.payload, self.options.timeout),
                self.retry,
                self.host_deadline,
            )
        except HostFailure as failure:
            return self.outcome(
                host,
                started,
                stage=failure.stage,
                error=failure.message,
                code=failure.code,
                stderr_tail=failure.evidence,
            )
        verdict = interpret(run, python, self.decoder)
        return self.outcome(
            host,
            started,
            document=verdict.document,
            stage=verdict.stage,
            error=verdict.error,
            code=verdict.code,
            stderr_tail=verdict.stderr_tail,
            banner=verdict.banner,
        )

    async def collect(
        self,
        hosts: Sequence[HostSpec],
        on_result: Callable[[HostOutcome], None],
        on_start: Callable[[HostSpec], None] | None = None,
    ) -> None:
        await fan_out(
            hosts,
            self.probe_host,
            concurrency=self.options.concurrency,
            on_result=on_result,
            on_start=on_start,
        )


def _interrupted(collector: Collector, host: HostSpec) -> HostOutcome:
    return collector.outcome(
        host,
        time.monotonic(),
        stage=Stage.INTERRUPTED,
        error="the run was interrupted while this host was being probed; its probe was stopped",
        code="interrupted",
    )


#: How often the collector asks the run writer whether a part is due.
TICK_S = 1.0


def _first(group: BaseExceptionGroup[StoreError]) -> StoreError:
    """The first error of a (possibly nested) exception group."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    assert isinstance(found, StoreError)
    return found


def _store_failure(exc: StoreError, result: CollectResult, tally: Tally) -> StoreError:
    """The store failed once hosts were contacted: say exactly what is stored."""
    cause = exc.__cause__
    if isinstance(exc, StoreWriteError):
        reason = exc.reason
    else:  # the writer's own message already says "stored": use what it wraps
        reason = cause.message if isinstance(cause, StoreError) else exc.message
    if result.stored:
        what = (
            f"run {result.run_id} is stored with its {tally.done} host(s) (its commit "
            "record is written); the next fleetcpu command folds it into the index"
        )
    elif result.hosts_committed:
        what = (
            f"run {result.run_id} is stored in part: {result.hosts_committed} of the "
            f"{tally.done} host(s) probed are in its committed parts (it reads as killed), "
            "the others are not stored"
        )
    else:
        what = (
            f"run {result.run_id} was not stored: {tally.done} host(s) probed, none of "
            "their results are in the store"
        )
    if isinstance(exc, StoreLockedError):
        return StoreLockedError(f"{reason}; {what}")
    return StoreWriteError(f"{reason}; {what}", reason)


async def _collect_into_store(
    inventory: Inventory,
    collector: Collector,
    store_dir: str | None,
    tally: Tally,
    progress: Progress,
    result: CollectResult,
) -> None:
    from ..contract.shell import ComplianceRecorder
    from ..store import Store, resolve_location

    store = Store.create_or_open(resolve_location(store_dir))
    in_flight = InFlight(progress)
    writer = store.run_writer(command="collect", inventory=inventory.path)
    writer.check_writable()  # before any host: exit 4 with nothing contacted
    result.compliance = ComplianceRecorder.load(store)
    result.run_id = writer.run_id
    try:
        with term_cancels_run(), writer:
            await _fan_out(inventory, collector, writer, tally, in_flight, result)
    finally:
        result.stored = writer.committed
        result.hosts_committed = writer.hosts_committed


async def _fan_out(
    inventory: Inventory,
    collector: Collector,
    writer: RunWriter,
    tally: Tally,
    in_flight: InFlight,
    result: CollectResult,
) -> None:
    from ..store.schema import COMPLIANCE, HEADROOM

    judge = result.compliance

    def store(outcome: HostOutcome) -> None:
        # The verdicts go in before the host's row, whose ``add`` may cut a part:
        # so a host and its verdicts always commit in the same part.
        if judge is not None and judge.active:
            rows = judge.rows(outcome, writer.run_id)
            if rows:
                writer.add_rows(COMPLIANCE, rows)
        writer.add(outcome)

    def finished(outcome: HostOutcome) -> None:
        tally.add(outcome)  # probed, whether or not the store takes it
        in_flight.finished(outcome.host)
        store(outcome)

    async def tick() -> None:
        # Layout 2: results that waited 5 s become a committed part even when no
        # host finishes for minutes, so a kill costs seconds (``RunWriter.flush_due``).
        while True:
            await asyncio.sleep(TICK_S)
            writer.flush_due()

    try:
        try:
            async with asyncio.TaskGroup() as group:
                ticker = group.create_task(tick())
                await collector.collect(inventory.hosts, finished, in_flight.started)
                ticker.cancel()
            if judge is not None and judge.active:
                # The whole run's current members, in its last part (contract.headroom).
                rows = judge.headroom_rows()
                if rows:
                    writer.add_rows(HEADROOM, rows)
        except* StoreError as failed:
            # The writer gave up on the run; stop contacting hosts whose results
            # cannot be stored, and report after the summary.
            raise _first(failed) from None
    except asyncio.CancelledError:
        result.interrupted = True
        for host in list(in_flight.hosts.values()):
            outcome = _interrupted(collector, host)
            tally.add(outcome)
            store(outcome)
        raise


def run_collect(
    inventory_path: str,
    options: FleetOptions,
    *,
    store_dir: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    bundle: Bundle | None = None,
    strict: bool = False,
) -> CollectResult:
    """The whole command; raises the error whose exit code the CLI must return.
    ``strict``: members that failed, ran under another accelerator or could not be
    judged count for exit 26 too (``fleetcpu collect --strict``)."""
    out = out or sys.stdout
    err = err or sys.stderr
    inventory = load_inventory(inventory_path, strict=options.strict_inventory, max_hosts=options.max_hosts)
    for warning in inventory.warnings:
        err.write(f"warning: {warning}\n")
    transports = build_transports(inventory.hosts, options)
    collector = Collector(options, transports, bundle or load_bundle())
    tally = Tally(total=len(inventory.hosts))
    progress = Progress(tally, err)
    result = CollectResult(tally, 0.0)
    started = time.monotonic()
    try:
        asyncio.run(_collect_into_store(inventory, collector, store_dir, tally, progress, result))
    except (KeyboardInterrupt, asyncio.CancelledError):
        result.interrupted = True
    except StoreError as exc:
        if result.run_id is None:
            raise type(exc)(f"{exc.message}; no host was contacted") from exc
        result.store_error = exc
    finally:
        progress.close()
    result.elapsed = time.monotonic() - started
    ssh = transports.get("ssh")
    result.accepted_keys = list(getattr(ssh, "accepted_keys", []))
    for line in tally.summary_lines(result.elapsed, result.run_id):
        out.write(line + "\n")
    judged = result.compliance.judged if result.compliance is not None else []
    if judged:
        from ..contract.shell import summary_lines

        for line in summary_lines(judged):
            out.write(line + "\n")
    if result.accepted_keys:
        shown = ", ".join(result.accepted_keys[:5])
        more = len(result.accepted_keys) - 5
        err.write(
            f"warning: trusted {len(result.accepted_keys)} new host key(s) on first use and "
            f"added them to known_hosts: {shown}{f' and {more} more' if more > 0 else ''}\n"
        )
    out.flush()
    raise_exit_code(result, tally, err, strict=strict)
    return result


def raise_exit_code(result: CollectResult, tally: Tally, err: TextIO, *, strict: bool = False) -> None:
    """One code per run, in the contract's precedence: 130, 3 (raised before any host
    is contacted), 4, 6, 26, 5, then 0. 26 comes before 5: in a large fleet some host
    is always down, and that must not hide a host that cannot run its pool's CPU.
    ``strict`` changes which verdicts make 26, never the order."""
    if result.interrupted:
        if result.store_error is not None:
            err.write(f"error: {_store_failure(result.store_error, result, tally).message}\n")
        raise InterruptedByUserError(
            f"interrupted: {tally.done} of {tally.total} host(s) stored, run {result.run_id} "
            "recorded as interrupted"
        )
    if result.store_error is not None:
        raise _store_failure(result.store_error, result, tally)
    failed = tally.total - tally.ok
    if failed and tally.ok == 0:
        raise AllHostsFailedError(f"all {tally.total} host(s) failed; their failure rows are stored")
    judged = result.compliance.judged if result.compliance is not None else []
    if judged:
        from ..contract.shell import offending_message

        message = offending_message(judged, strict)
        if message is not None:
            raise NonCompliantError(
                message + (f"; also {failed} of {tally.total} host(s) failed" if failed else "")
            )
    if failed:
        raise SomeHostsFailedError(f"{failed} of {tally.total} host(s) failed; their failure rows are stored")
