"""``fleetcpu verify``: plan -> the CPU started on every member -> verdicts -> a stored run -> exit code.

The order is the contract, and it is collect's:

1. Plan (``targets``): inventory, CPU, machine type, hosts. Every refusal
   (3, 20, 21, 22, 23, bad ``--cpu``) happens before any host is contacted
   or anything is written.
2. Transports and bundle (``collect.collect_fleet.build_transports``): a bad ``-i``
   or ``--ssh-config`` is a usage error (2), still before any contact; the
   store is opened (created if needed) so a foreign ``--store`` fails (4)
   before any contact too.
3. Fan-out with collect's machinery: the same bootstrap and bundle on stdin
   (its supervisor removes the private directory whatever happens, the
   probe's QEMU dies with it), ``fanout.fan_out`` bounding hosts in flight,
   ``with_retries`` for the transient connection failures only, the
   transport's command timeout (EOF, SIGTERM, grace) and a per-host
   deadline. A host that cannot be asked is a failure row, never an
   exception.
4. Judge every answer together (``judge``), store the run (``command =
   verify``, one ``verify`` row per host; never a ``hosts`` row, so a verify
   does not change any host's latest record), print, exit 0 when every
   member passed and 24 otherwise.

Unlike collect, rows are written after the fan-out, not as each host
answers: a host's verdict depends on every other host's vCPU. A verify
answer is a few KB, so holding one per host is cheap. Ctrl-C or SIGTERM:
hosts in flight are stopped by their transports and recorded as
``interrupted``, the answers already in are judged and stored, the run is
committed as interrupted, exit 130.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from ..errors import InterruptedByUserError, NoUsableDataError, VerifyFailedError
from ..fleet import bootstrap
from ..fleet.bundle import Bundle, load_bundle
from ..fleet.fanout import RetryPolicy, fan_out, term_cancels_run, within_deadline
from ..fleet.inventory import HostSpec
from ..fleet.options import FleetOptions, build_transports
from ..fleet.progress import InFlight, Progress, Tally
from ..fleet.remote_run import HostFailure
from ..fleet.transport import Transport
from ..store import Store, resolve_location
from ..vocabulary import Accel, Stage
from .enforce_reply import interpret
from .judge import judge
from .report import render, summary_line
from .targets import Plan, Unreachable, plan
from .verdicts import HostRun, Target, VerifyReport
from .verify_rows import verify_row

__all__ = ["Verifier", "run_verify", "verify_args"]


def _now() -> datetime:
    return datetime.now(UTC)


def verify_args(target: Target, host: HostSpec, command_timeout: float) -> list[str]:
    """The host half's arguments: ``verify`` (see ``fleetcpu.probe.__main__``), then its flags."""
    args = [
        "verify",
        "--cpu",
        target.cpu,
        "--machine-type",
        target.machine_type,
        "--accel",
        target.accel,
        "--timeout",
        f"{bootstrap.probe_timeout(command_timeout):g}",
    ]
    if host.qemu:
        args += ["--qemu-binary", host.qemu]
    return args


class Verifier:
    """Verifies one target on hosts and hands over one ``HostRun`` each; knows nothing of the store."""

    def __init__(
        self,
        options: FleetOptions,
        transports: dict[str, Transport],
        bundle: Bundle,
        target: Target,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.options = options
        self.transports = transports
        self.target = target
        self.payload = bootstrap.payload(bundle)
        self.retry = retry or options.retry_policy()
        self.host_deadline = options.host_deadline(self.retry)

    def failure(
        self, host: HostSpec, started: float, stage: str, error: str, code: str | None, stderr_tail: str = ""
    ) -> HostRun:
        return HostRun(
            host.name,
            host.pool,
            _now(),
            round(time.monotonic() - started, 4),
            None,
            stage=stage,
            error=error,
            error_code=code,
            stderr_tail=stderr_tail,
        )

    async def verify_host(self, host: HostSpec) -> HostRun:
        """One host, start to finish; every way it can go wrong ends as a failed ``HostRun``."""
        started = time.monotonic()
        transport = self.transports[host.transport]
        python = host.python or bootstrap.DEFAULT_PYTHON
        command = bootstrap.remote_command(host.python, verify_args(self.target, host, self.options.timeout))
        try:
            run = await within_deadline(
                lambda: transport.run(host, command, self.payload, self.options.timeout),
                self.retry,
                self.host_deadline,
            )
        except HostFailure as failure:
            return self.failure(host, started, failure.stage, failure.message, failure.code, failure.evidence)
        answer = interpret(run, python)
        return HostRun(
            host.name,
            host.pool,
            _now(),
            round(time.monotonic() - started, 4),
            answer.document,
            stage=answer.stage,
            error=answer.error,
            error_code=answer.code,
            stderr_tail=answer.stderr_tail,
        )


def _unreachable(item: Unreachable) -> HostRun:
    return HostRun(
        item.host, item.pool, _now(), 0.0, None, stage=Stage.CONNECT, error=item.message, error_code=item.code
    )


async def _verify_all(
    hosts: Sequence[HostSpec], verifier: Verifier, runs: list[HostRun], tally: Tally, progress: Progress
) -> None:
    in_flight = InFlight(progress)

    def finished(run: HostRun) -> None:
        runs.append(run)
        # The progress line counts answers; verdicts need every host and come after.
        tally.count(run.stage)
        in_flight.finished(run.host)

    try:
        with term_cancels_run():
            await fan_out(
                hosts,
                verifier.verify_host,
                concurrency=verifier.options.concurrency,
                on_result=finished,
                on_start=in_flight.started,
            )
    except asyncio.CancelledError:
        for host in list(in_flight.hosts.values()):
            runs.append(
                verifier.failure(
                    host,
                    time.monotonic(),
                    Stage.INTERRUPTED,
                    "the run was interrupted while this host was being verified; its QEMU was stopped",
                    "interrupted",
                )
            )
        raise


def _open_store(store_dir: str | None, *, required: bool) -> Store | None:
    """The store to plan from: required without an inventory; else it may not exist yet."""
    location = resolve_location(store_dir)
    try:
        return Store.open(location)
    except NoUsableDataError:
        if required:
            raise
        return None


def run_verify(
    pool: str,
    options: FleetOptions,
    *,
    inventory: str | None = None,
    store_dir: str | None = None,
    accel: str = Accel.KVM,
    machine_type: str | None = None,
    cpu: str | None = None,
    fmt: str = "table",
    out: TextIO | None = None,
    err: TextIO | None = None,
    bundle: Bundle | None = None,
) -> VerifyReport:
    """The whole command; raises the error whose exit code the CLI must return (24: some failed)."""
    out = out or sys.stdout
    err = err or sys.stderr
    store = _open_store(store_dir, required=inventory is None)
    chosen: Plan = plan(
        pool,
        store=store,
        inventory_path=inventory,
        accel=accel,
        machine_type=machine_type,
        cpu=cpu,
        strict_inventory=options.strict_inventory,
        max_hosts=options.max_hosts,
    )
    for warning in chosen.warnings:
        err.write(f"warning: {warning}\n")
    transports = build_transports(chosen.hosts, options)
    verifier = Verifier(options, transports, bundle or load_bundle(), chosen.target)
    store = store or Store.create_or_open(resolve_location(store_dir))

    runs = [_unreachable(u) for u in chosen.unreachable]
    tally = Tally(total=len(chosen.hosts))
    progress = Progress(tally, err)
    started_at = _now()
    started = time.monotonic()
    interrupted = False
    try:
        asyncio.run(_verify_all(chosen.hosts, verifier, runs, tally, progress))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    finally:
        progress.close()
    elapsed = time.monotonic() - started

    with store.run_writer(command="verify", inventory=chosen.inventory, started_at=started_at) as writer:
        report = judge(chosen.target, runs, run_id=writer.run_id, elapsed_s=elapsed, interrupted=interrupted)
        for verdict in report.hosts:
            writer.add_verify(verify_row(verdict, chosen.target, report.reference), passed=verdict.passed)
        if interrupted:
            writer.commit("interrupted")

    out.write(render(report, fmt))
    if fmt != "table":  # the table ends with it; a JSON document must stay pure
        err.write(summary_line(report) + "\n")
    accepted = list(getattr(transports.get("ssh"), "accepted_keys", []))
    if accepted:
        err.write(
            f"warning: trusted {len(accepted)} new host key(s) on first use and added "
            f"them to known_hosts: {', '.join(accepted[:5])}\n"
        )
    out.flush()
    if interrupted:
        raise InterruptedByUserError(
            f"interrupted: {len(runs)} host(s) stored, run {report.run_id} recorded as interrupted"
        )
    if not report.passed:
        failed = sum(1 for h in report.hosts if not h.passed)
        raise VerifyFailedError(
            f"{failed} of {len(report.hosts)} host(s) of pool {pool!r} did "
            f"not pass; their rows are stored (run {report.run_id})"
        )
    return report
