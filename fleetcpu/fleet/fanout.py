"""Bounded fan-out over many hosts, and retries with backoff for failures that may pass.

Why a fixed pool of workers pulling from one iterator, not ``gather`` over
every host: 10,000 hosts must not mean 10,000 coroutines, sockets and
half-read documents at once. ``concurrency`` workers each take the next host
when they finish one, so at most ``concurrency`` hosts are in flight, memory
stays flat, and results stream to ``on_result`` as they complete (the store
writer takes them one by one, synchronously).

Why retries only for transient failures, with exponential backoff and
jitter: sshd's ``MaxStartups`` (default ``10:30:100``) drops a share of
unauthenticated connections when a burst arrives; a retry after a short,
randomised pause succeeds, while retrying in lockstep would just make the next
burst. A wrong host key or a refused login will not change in two seconds, so
those are never retried, and nothing is retried once the probe has started on
the host (it may have run; running it twice hides what happened).

Why a per-host deadline on top of the transport's own timeouts: it bounds
retries plus command plus cleanup, so no single host can stall a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from ..vocabulary import Stage
from .remote_run import HostFailure

__all__ = [
    "R",
    "RetryPolicy",
    "T",
    "fan_out",
    "term_cancels_run",
    "with_retries",
    "within_deadline",
]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 2
    #: First pause in seconds; each further retry doubles it, up to ``cap``.
    base: float = 0.5
    cap: float = 8.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        """Pause before retry ``attempt`` (1-based): "equal jitter", half fixed, half random.

        The fixed half guarantees the server a breather; the random half
        spreads hosts that failed together so they do not retry together.
        """
        ceiling = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def worst_case(self) -> float:
        return sum(min(self.cap, self.base * 2.0**i) for i in range(self.retries))


async def with_retries(
    attempt: Callable[[], Awaitable[R]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, HostFailure], None] | None = None,
) -> R:
    """Run ``attempt``; on a transient ``HostFailure`` pause and try again, at most ``retries`` times.

    The last failure is raised as is; its message says how many attempts were made.
    """
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except HostFailure as failure:
            if not failure.transient or tries > policy.retries:
                if tries > 1:
                    failure.message += f" (after {tries} attempts)"
                raise
            if on_retry is not None:
                on_retry(tries, failure)
            await asyncio.sleep(policy.delay(tries))


async def within_deadline(attempt: Callable[[], Awaitable[R]], policy: RetryPolicy, deadline: float) -> R:
    """``with_retries`` under one host's whole deadline; running out is a ``timeout`` failure.

    The safety net collect and verify share: whatever the transports' own
    bounds, a host never holds a worker longer than ``deadline`` seconds.
    """
    try:
        async with asyncio.timeout(deadline):
            return await with_retries(attempt, policy)
    except TimeoutError as exc:
        raise HostFailure(
            Stage.TIMEOUT,
            f"host not done within its deadline of {deadline:.0f}s (retries, command, cleanup)",
            code="host-deadline",
        ) from exc


async def fan_out(
    items: Iterable[T],
    work: Callable[[T], Awaitable[R]],
    *,
    concurrency: int,
    on_result: Callable[[R], None],
    on_start: Callable[[T], None] | None = None,
) -> None:
    """Run ``work`` on every item with at most ``concurrency`` in flight; hand each result over at once.

    ``work`` is expected to turn host trouble into a result; an exception
    escaping it is a bug and stops the whole fan-out (the other workers are
    cancelled, the exception propagates), as does cancellation from outside.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    source: Iterator[T] = iter(items)

    async def worker() -> None:
        for item in source:  # a shared iterator: each item is taken by exactly one worker
            if on_start is not None:
                on_start(item)
            on_result(await work(item))

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


@contextlib.contextmanager
def term_cancels_run() -> Iterator[None]:
    """SIGTERM (a scheduler, systemd) stops a fan-out like Ctrl-C: the current task is cancelled.

    Only the main thread can own signals; an embedding caller in another
    thread keeps its own handling.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    handles = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if handles else None
    if handles:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        yield
    finally:
        if handles:
            loop.remove_signal_handler(signal.SIGTERM)
            # remove_signal_handler leaves SIG_DFL: give back the process's own handler.
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
