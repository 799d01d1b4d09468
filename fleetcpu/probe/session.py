"""The QMP conversation with one paused QEMU: the only module that knows command names.

Each query returns typed records (via ``decode``). Queries whose failure only
loses part of the picture (definitions, expansions, vCPU properties) report a
``QueryFailure`` instead of raising, so one odd QEMU build still yields the
rest of its data; the caller treats a lost connection as QEMU's death.

Python 3.9: this module ships to hosts.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any, Dict, List, Mapping, Optional, Tuple, TypeVar

from qemu.qmp import ExecuteError, Message, QMPClient

from . import decode
from .records import (
    CpuModel,
    Expansion,
    FeatureWord,
    MachineInfo,
    QueryFailure,
    Scalar,
    VcpuProps,
)

T = TypeVar("T")


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

    async def open(self, sock: socket.socket) -> None:
        """Greeting and capabilities negotiation over the inherited socket."""
        await self.qmp.connect(sock)

    async def close(self) -> None:
        """Ask QEMU to quit, then drop the connection; QEMU's EOF on quit is expected."""
        # QEMU may close before replying to quit, and disconnect() after quit can
        # raise EOFError: neither matters, the caller reaps the process.
        with contextlib.suppress(Exception):
            await self.qmp.execute("quit")
        with contextlib.suppress(Exception):
            await self.qmp.disconnect()

    async def _run(self, command: str, args: Optional[Mapping[str, object]] = None) -> Any:
        return await self.qmp.execute(command, args)

    def _failed(self, query: str, exc: BaseException) -> None:
        if isinstance(exc, ExecuteError):
            self.failures.append(QueryFailure(query, exc.error_class, str(exc)))
        else:
            self.failures.append(QueryFailure(query, "DecodeError", str(exc)))

    # Essential: a QEMU that cannot answer these is not one we can probe.
    async def version(self) -> Tuple[str, str]:
        return decode.decode_version(await self._run("query-version"))

    async def machines(self) -> Tuple[MachineInfo, ...]:
        return decode.decode_machines(await self._run("query-machines"))

    # Partial: a failure is recorded and the probe goes on.
    async def kvm(self) -> Tuple[Optional[bool], Optional[bool]]:
        try:
            return decode.decode_kvm(await self._run("query-kvm"))
        except (ExecuteError, decode.ReplyShapeError) as exc:
            self._failed("query-kvm", exc)
            return None, None

    async def cpu_definitions(self) -> Tuple[CpuModel, ...]:
        try:
            return decode.decode_cpu_definitions(await self._run("query-cpu-definitions"))
        except (ExecuteError, decode.ReplyShapeError) as exc:
            self._failed("query-cpu-definitions", exc)
            return ()

    async def expansion(
        self,
        kind: str,
        model: str,
        props: Mapping[str, Scalar],
        vocabulary: Optional[Tuple[str, ...]] = None,
    ) -> Optional[Expansion]:
        args: Dict[str, object] = {"type": kind, "model": {"name": model}}
        if props:
            args["model"] = {"name": model, "props": dict(props)}
        try:
            reply = await self._run("query-cpu-model-expansion", args)
            return decode.decode_expansion(reply, vocabulary)
        except (ExecuteError, decode.ReplyShapeError) as exc:
            self._failed("query-cpu-model-expansion %s %s" % (kind, model), exc)
            return None

    async def vcpu_path(self) -> Optional[str]:
        try:
            return decode.decode_qom_path(await self._run("query-cpus-fast"))
        except (ExecuteError, decode.ReplyShapeError) as exc:
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
            return decode.decode_feature_words(value, prop)
        except decode.ReplyShapeError as exc:
            self._failed("qom-get " + prop, exc)
            return ()

    async def vcpu(self, path: str) -> VcpuProps:
        values: Dict[str, Any] = {}
        for prop in decode.VCPU_PROPS:
            ok, value = await self._qom_get(path, prop)
            if ok:
                values[prop] = value
        try:
            return decode.decode_vcpu(values)
        except decode.ReplyShapeError as exc:
            self._failed("qom-get vcpu properties", exc)
            return VcpuProps()
