"""What the operator sees during and after a run: a progress line on a terminal, then a summary.

Why silent when stderr is not a terminal: cron mails and CI logs must not
fill with carriage returns; the summary and the exit code say everything a
script needs. Why the summary groups failures by stage: "40 hosts failed"
is not actionable, "37 hostkey, 3 python" is (one known_hosts to fix, three
hosts to install Python on); a few host names per stage say where to start.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from ..outcome import STAGES, HostOutcome
from ..vocabulary import Stage

if TYPE_CHECKING:
    from .inventory import HostSpec

__all__ = ["EXAMPLES", "InFlight", "Progress", "Tally"]

#: Host names listed per failed stage in the summary; the store has them all.
EXAMPLES = 5


@dataclass
class Tally:
    """Counts of a run, enough for the summary (never the outcomes themselves: memory stays flat)."""

    total: int
    ok: int = 0
    started: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    accels: Counter[str] = field(default_factory=Counter)
    #: Hosts whose document came after a login banner (skipped; each row says so).
    banners: int = 0

    @property
    def done(self) -> int:
        return self.ok + sum(self.failed.values())

    def count(self, stage: str | None) -> None:
        """One host done: ok when it stopped at no stage."""
        if stage is None:
            self.ok += 1
        else:
            self.failed[stage] += 1

    def add(self, outcome: HostOutcome) -> None:
        if outcome.banner:
            self.banners += 1
        if outcome.ok:
            self.count(None)
            if outcome.document is not None:
                self.accels[outcome.document.accel or "unknown"] += 1
            return
        stage = outcome.failure_stage or Stage.OUTPUT
        self.count(stage)
        names = self.examples.setdefault(stage, [])
        if len(names) < EXAMPLES:
            message = (outcome.failure_message or "").splitlines()[0:1]
            names.append(f"{outcome.host}: {message[0][:160]}" if message else outcome.host)

    def summary_lines(self, elapsed: float, run_id: str | None) -> list[str]:
        failed = sum(self.failed.values())
        accels = ", ".join(f"{name} {count}" for name, count in sorted(self.accels.items()))
        head = f"collected {self.done} of {self.total} host(s) in {elapsed:.1f}s: ok {self.ok}"
        if accels:
            head += f" ({accels})"
        head += f", failed {failed}"
        lines = [head + (f"; run {run_id}" if run_id else "")]
        order = {stage: i for i, stage in enumerate(STAGES)}
        for stage in sorted(self.failed, key=lambda s: (order.get(s, len(order)), s)):
            lines.append(f"  {stage}: {self.failed[stage]}")
            for example in self.examples.get(stage, ()):
                lines.append(f"    {example}")
            more = self.failed[stage] - len(self.examples.get(stage, ()))
            if more > 0:
                lines.append(f"    ... and {more} more (fleetcpu hosts)")
        if self.banners:
            lines.append(f"  {self.banners} host(s) printed a banner before the document (skipped)")
        return lines


class Progress:
    """One self-overwriting line on a TTY, at most ``rate`` redraws per second; nothing otherwise."""

    def __init__(
        self, tally: Tally, stream: TextIO, *, enabled: bool | None = None, rate: float = 10.0
    ) -> None:
        self.tally = tally
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.interval = 1.0 / rate
        self._last = 0.0
        self._shown = False

    def update(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        t = self.tally
        width = 30
        filled = width * t.done // t.total if t.total else width
        bar = "#" * filled + "-" * (width - filled)
        failed = sum(t.failed.values())
        in_flight = t.started - t.done
        self.stream.write(
            f"\r\x1b[K[{bar}] {t.done}/{t.total} ok {t.ok} failed {failed} in flight {in_flight}"
        )
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


class InFlight:
    """Hosts a fan-out has started and not finished, kept in step with the progress line.

    Collect and verify both need it: on Ctrl-C exactly these hosts are
    recorded as interrupted, never silently dropped.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.hosts: dict[str, HostSpec] = {}

    def started(self, host: HostSpec) -> None:
        self.hosts[host.name] = host
        self.progress.tally.started += 1
        self.progress.update()

    def finished(self, name: str) -> None:
        """Call once the tally has counted the host."""
        self.hosts.pop(name, None)
        tally = self.progress.tally
        self.progress.update(force=tally.done == tally.total)
