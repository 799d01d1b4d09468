"""The QMP conversation with one paused QEMU: the only module that knows command names.

Each query returns typed records (via ``qmp_decode``). Queries whose failure only
loses part of the picture (definitions, expansions, vCPU properties) report a
``QueryFailure`` instead of raising, so one odd QEMU build still yields the
rest of its data; the caller treats a lost connection as QEMU's death.

The ``expect_*`` methods send queries ahead, all at once, so QEMU answers
the next while the last reply is decoded instead of waiting a round trip
each (a launch asks some forty). The query methods then take those replies
in their usual order, so answers, failures and their order are the same
whether or not a query was sent ahead.

Python 3.9: this module ships to hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar

from qemu.qmp import ExecuteError, Message, QMPClient

from . import qmp_decode
from .document import (
    CpuModel,
    Expansion,
    FeatureWord,
    MachineInfo,
    QueryFailure,
    Scalar,
    VcpuProps,
)

__all__ = ["Session", "T"]

T = TypeVar("T")

_Call = Tuple[str, Optional[Mapping[str, object]]]


def _key(command: str, args: Optional[Mapping[str, object]]) -> str:
    return command + json.dumps(args, sort_keys=True) if args else command


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a sent-ahead query's error as seen: its reader re-raises it, or nobody needed it."""
    if not task.cancelled():
        task.exception()


def _expansion_args(kind: str, model: str, props: Mapping[str, Scalar]) -> Dict[str, object]:
    if props:
        return {"type": kind, "model": {"name": model, "props": dict(props)}}
    return {"type": kind, "model": {"name": model}}


class _QuietClient(QMPClient):
    """``QMPClient`` without its eager message logging.

    qemu.qmp renders every message as indented JSON (``str(msg)``, the pure
    Python encoder) before asking the logger whether anyone listens; for a
    probe's 100 KB of expansions that was a fifth of its run time. The
    messages are still logged when DEBUG is on for this logger.
    """

    def _cb_outbound(self, msg: Message) -> Message:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("--> %s", msg)
        return msg

    def _cb_inbound(self, msg: Message) -> Message:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("<-- %s", msg)
        return msg


class Session:
    def __init__(self, name: str = "fleetcpu-probe") -> None:
        self.qmp: QMPClient = _QuietClient(name)
        self.failures: List[QueryFailure] = []
        self._ahead: Dict[str, asyncio.Future[Any]] = {}

    async def open(self, sock: socket.socket) -> None:
        """Greeting and capabilities negotiation over the inherited socket."""
        await self.qmp.connect(sock)

    async def close(self) -> None:
        """Ask QEMU to quit, then drop the connection; QEMU's EOF on quit is expected."""
        # QEMU may close before replying to quit, and disconnect() after quit can
        # raise EOFError: neither matters, the caller reaps the process.
        self.drop_expected()
        with contextlib.suppress(Exception):
            await self.qmp.execute("quit")
        with contextlib.suppress(Exception):
            await self.qmp.disconnect()

    async def _run(self, command: str, args: Optional[Mapping[str, object]] = None) -> Any:
        ahead = self._ahead.pop(_key(command, args), None)
        if ahead is not None:
            return await ahead
        return await self.qmp.execute(command, args)

    def _send_ahead(self, calls: Iterable[_Call]) -> None:
        for command, args in calls:
            key = _key(command, args)
            if key not in self._ahead:
                task = asyncio.ensure_future(self.qmp.execute(command, args))
                task.add_done_callback(_retrieve)
                self._ahead[key] = task

    def expect_launch(self, first: bool, model: str, props: Mapping[str, Scalar]) -> None:
        """Send what a fresh launch is asked before its models: version and machines if
        ``first``, then KVM, definitions, both expansions of ``model`` and the vCPU list."""
        calls: List[_Call] = [("query-version", None), ("query-machines", None)] if first else []
        calls += [
            ("query-kvm", None),
            ("query-cpu-definitions", None),
            ("query-cpu-model-expansion", _expansion_args("static", model, props)),
            ("query-cpu-model-expansion", _expansion_args("full", model, props)),
            ("query-cpus-fast", None),
        ]
        self._send_ahead(calls)

    def expect_models(self, models: Iterable[str]) -> None:
        """Send the static expansion of each of ``models``."""
        self._send_ahead(("query-cpu-model-expansion", _expansion_args("static", m, {})) for m in models)

    def expect_vcpu(self, path: str) -> None:
        """Send every ``qom-get`` that ``feature_words`` and ``vcpu`` ask of ``path``."""
        props = ["feature-words", "filtered-features", *qmp_decode.VCPU_PROPS]
        self._send_ahead(("qom-get", {"path": path, "property": p}) for p in props)

    def drop_expected(self) -> None:
        """Forget queries sent ahead and not read (the conversation ended early)."""
        for task in self._ahead.values():
            task.cancel()
        self._ahead.clear()

    def _failed(self, query: str, exc: BaseException) -> None:
        if isinstance(exc, ExecuteError):
            self.failures.append(QueryFailure(query, exc.error_class, str(exc)))
        else:
            self.failures.append(QueryFailure(query, "DecodeError", str(exc)))

    # Essential: a QEMU that cannot answer these is not one we can probe.
    async def version(self) -> Tuple[str, str]:
        return qmp_decode.decode_version(await self._run("query-version"))

    async def machines(self) -> Tuple[MachineInfo, ...]:
        return qmp_decode.decode_machines(await self._run("query-machines"))

    # Partial: a failure is recorded and the probe goes on.
    async def kvm(self) -> Tuple[Optional[bool], Optional[bool]]:
        try:
            return qmp_decode.decode_kvm(await self._run("query-kvm"))
        except (ExecuteError, qmp_decode.ReplyShapeError) as exc:
            self._failed("query-kvm", exc)
            return None, None

    async def cpu_definitions(self) -> Tuple[CpuModel, ...]:
        try:
            return qmp_decode.decode_cpu_definitions(await self._run("query-cpu-definitions"))
        except (ExecuteError, qmp_decode.ReplyShapeError) as exc:
            self._failed("query-cpu-definitions", exc)
            return ()

    async def expansion(
        self,
        kind: str,
        model: str,
        props: Mapping[str, Scalar],
        vocabulary: Optional[Tuple[str, ...]] = None,
    ) -> Optional[Expansion]:
        try:
            reply = await self._run("query-cpu-model-expansion", _expansion_args(kind, model, props))
            return qmp_decode.decode_expansion(reply, vocabulary)
        except (ExecuteError, qmp_decode.ReplyShapeError) as exc:
            self._failed("query-cpu-model-expansion %s %s" % (kind, model), exc)
            return None

    async def vcpu_path(self) -> Optional[str]:
        try:
            return qmp_decode.decode_qom_path(await self._run("query-cpus-fast"))
        except (ExecuteError, qmp_decode.ReplyShapeError) as exc:
            self._failed("query-cpus-fast", exc)
            return None

    async def _qom_get(self, path: str, prop: str) -> Tuple[bool, Any]:
        try:
            return True, await self._run("qom-get", {"path": path, "property": prop})
        except ExecuteError as exc:
            self._failed("qom-get " + prop, exc)
            return False, None

    async def feature_words(self, path: str, prop: str) -> Tuple[FeatureWord, ...]:
        ok, value = await self._qom_get(path, prop)
        if not ok:
            return ()
        try:
            return qmp_decode.decode_feature_words(value, prop)
        except qmp_decode.ReplyShapeError as exc:
            self._failed("qom-get " + prop, exc)
            return ()

    async def vcpu(self, path: str) -> VcpuProps:
        values: Dict[str, Any] = {}
        for prop in qmp_decode.VCPU_PROPS:
            ok, value = await self._qom_get(path, prop)
            if ok:
                values[prop] = value
        try:
            return qmp_decode.decode_vcpu(values)
        except qmp_decode.ReplyShapeError as exc:
            self._failed("qom-get vcpu properties", exc)
            return VcpuProps()
