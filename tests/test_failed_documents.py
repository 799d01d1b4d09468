"""Failed probe and verify documents, byte for byte, as the host prints them.

The other golden files in ``tests/golden`` are ok documents; a failed
document is what a broken host sends, what the store keeps as its evidence,
and what a script reads to learn the stage and exit code
(``tests/golden/failed`` holds them). Both documents are built by
the real entry points (``run_probe``, ``run_verify``) on a made-up host
root, and compared as text: key order, spelling of every word, the null
fields. Only what differs per run is replaced before comparing: the clock
(``time``, ``duration_s``), the version, this machine's ``/dev/kvm`` and the
temporary host root's path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import typing
from pathlib import Path

import jsonschema
import pytest

from fleetcpu import __version__
from fleetcpu.probe.document import ProbeDocument
from fleetcpu.probe.enforce import VerifyOptions, run_verify
from fleetcpu.probe.enforce_document import VerifyDocument
from fleetcpu.probe.envelope import JsonDocument
from fleetcpu.probe.launch_plan import ProbeOptions, dev_kvm_state
from fleetcpu.probe.run import run_probe
from fleetcpu.vocabulary import DevKvm

from .conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "failed"
MISSING_QEMU = "/nonexistent/qemu-system-x86_64"

#: A host root whose facts are all known, so the failed document's ``host`` is fixed.
HOST_FILES = {
    "proc/sys/kernel/hostname": "kvm17\n",
    "proc/sys/kernel/osrelease": "6.1.0-13-amd64\n",
    "proc/cpuinfo": (
        "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
        "model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\nstepping\t: 7\nmicrocode\t: 0x5003604\n"
    ),
    "sys/module/kvm_intel/parameters/nested": "Y\n",
}


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    for rel, text in HOST_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _normalised(text: str, root: Path) -> str:
    """The document's text with what differs per run and per machine replaced by placeholders."""
    assert dev_kvm_state() in DevKvm.values()
    for pattern, placeholder in (
        (r'"time": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', '"time": "<time>"'),
        (r'"duration_s": \d+(\.\d+)?(e-\d+)?', '"duration_s": "<duration>"'),
    ):
        text, n = re.subn(pattern, placeholder, text)
        assert n == 1, (pattern, text)
    return (
        text.replace(f'"probe_version": "{__version__}"', '"probe_version": "<version>"')
        .replace(f'"dev_kvm": "{dev_kvm_state()}"', '"dev_kvm": "<dev_kvm>"')
        .replace(str(root), "<root>")
    )


def _check(name: str, text: str, root: Path, schema: str) -> None:
    jsonschema.validate(json.loads(text), json.loads((REPO / "fleetcpu" / "schemas" / schema).read_text()))
    expected = (GOLDEN / name).read_text()
    assert _normalised(text, root) + "\n" == expected, f"tests/golden/failed/{name} differs"


def test_probe_without_qemu(host_root: Path) -> None:
    doc = asyncio.run(run_probe(ProbeOptions(qemu_binary=MISSING_QEMU, host_root=str(host_root))))
    assert (doc.status, doc.stage, doc.exit_code) == ("failed", "qemu", 10)
    _check("probe-qemu-missing.json", doc.to_json(), host_root, "probe-1.json")


def test_probe_with_a_host_root_that_is_not_there(host_root: Path) -> None:
    missing = host_root / "not-there"
    doc = asyncio.run(run_probe(ProbeOptions(qemu_binary=MISSING_QEMU, host_root=str(missing))))
    assert (doc.status, doc.stage, doc.exit_code) == ("failed", "facts", 16)
    _check("probe-host-root.json", doc.to_json(), host_root, "probe-1.json")


def test_verify_without_qemu(host_root: Path) -> None:
    opts = VerifyOptions(
        cpu="Skylake-Server,+pcid", machine_type="q35", accel="kvm", qemu_binary=MISSING_QEMU
    )
    doc = asyncio.run(run_verify(opts))
    assert (doc.status, doc.stage, doc.exit_code) == ("failed", "qemu", 10)
    _check("verify-qemu-missing.json", doc.to_json(), host_root, "verify-1.json")


def test_indented_documents_are_the_same_document(host_root: Path) -> None:
    """``--indent`` (a reader's view) changes whitespace only."""
    doc = asyncio.run(run_probe(ProbeOptions(qemu_binary=MISSING_QEMU, host_root=str(host_root))))
    assert json.loads(doc.to_json(indent=2)) == json.loads(doc.to_json()) == doc.to_dict()


def test_both_documents_open_and_close_alike() -> None:
    """The envelope's fields: opened by ``JsonDocument``, closed by each document (see envelope.py)."""
    opening = [f.name for f in dataclasses.fields(JsonDocument)]
    assert opening == ["status", "probe_version", "time", "duration_s"]
    closing = ["stage", "error", "error_code", "exit_code", "schema"]
    shapes = []
    for cls in (ProbeDocument, VerifyDocument):
        names = [f.name for f in dataclasses.fields(cls)]
        assert names[:4] == opening and names[-5:] == closing, cls.__name__
        hints = typing.get_type_hints(cls)
        shapes.append([(f.name, hints[f.name], f.default) for f in dataclasses.fields(cls)[-5:-1]])
    assert shapes[0] == shapes[1]
    assert (ProbeDocument.schema, VerifyDocument.schema) == ("fleetcpu.probe/1", "fleetcpu.verify/1")
