"""Banners and input hygiene (issue 17, item 3).

A login banner or motd before the document must not turn a valid host into
a failure: the document is found after leading non-JSON lines, as Ansible
does, and the row records that a banner was skipped. Inventory values that
would become options (``python=-c``), hold a NUL byte, or an ``ansible_host``
OpenSSH refuses (``;``, ``$``, backticks) are inventory errors, exit 3 naming
file and line, before any host is contacted. A ``host_root`` that does not
exist is a failure (stage ``facts``), not an ok row with every fact null.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetcpu.collect.probe_reply import interpret
from fleetcpu.errors import InventoryError
from fleetcpu.fleet.inventory import parse_inventory
from fleetcpu.fleet.remote_run import RemoteRun
from fleetcpu.outcome import STAGES

from .conftest import REPO, invoke, run_cli
from .support.sshd import latest_rows
from .test_collect_local import _spy_python
from .test_hostile_documents import collect_hostile

GOLDEN = (REPO / "tests" / "golden" / "probe-kvm-q35.json").read_text()
BANNERS = [
    "Welcome to kvm01 (Debian GNU/Linux 12)\n\nLast login: Mon Dec  7 02:36:20 2026\n",
    "*** Authorized use only ***\r\n",
    "motd: [maintenance window Sunday]\n",
]


def ran(stdout: bytes) -> RemoteRun:
    return RemoteRun(stdout=stdout, stderr_tail=b"", exit_status=0, exit_signal=None, duration_s=0.1)


# --------------------------------------------------------------------------- banners
@pytest.mark.parametrize("banner", BANNERS, ids=["motd", "crlf", "brackets"])
def test_a_banner_before_the_document_is_skipped_and_recorded(banner: str) -> None:
    verdict = interpret(ran((banner + GOLDEN).encode()), "python3")
    assert verdict.document is not None and verdict.stage is None, verdict.error
    assert verdict.document.ok
    lines = banner.count("\n") or 1
    assert f"skipped a {lines}-line banner before the probe document" in verdict.stderr_tail
    assert repr(banner.splitlines()[0])[1:-1][:40] in verdict.stderr_tail


def test_garbage_without_a_document_is_still_an_output_failure() -> None:
    for junk in (b"Welcome\nno json here\n", b'Welcome\n{"schema": 1', b"Welcome\n{nope}\n"):
        verdict = interpret(ran(junk), "python3")
        assert verdict.document is None and verdict.stage == "output", junk


def test_a_collect_through_a_banner_stores_an_ok_row_saying_so(tmp_path: Path) -> None:
    hosts = {"plain": GOLDEN, "chatty": BANNERS[0] + GOLDEN}
    res, store = collect_hostile(tmp_path, hosts)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = latest_rows(store)
    assert rows["chatty"]["status"] == rows["plain"]["status"] == "ok"
    assert "banner" in str(rows["chatty"]["stderr_tail"])
    assert "banner" not in str(rows["plain"]["stderr_tail"] or "")
    assert "1 host(s) printed a banner before the document (skipped)" in res.stdout


# --------------------------------------------------------------------------- inventory hygiene
HOSTILE_LINES = [
    ("h python=-c", "python"),
    ("h ansible_python_interpreter=-c", "ansible_python_interpreter"),
    ("h qemu=--help", "qemu"),
    ("h machine_types=-h", "machine type"),
    ("h machine_types=q35,-h", "machine type"),
    ("h ansible_host=-oProxyCommand=x", "ansible_host"),
    ("h ansible_user=-l", "ansible_user"),
    ("-Fx", "host name"),
    ("h pool=-p", "pool"),
    ("h ansible_host='kvm01;reboot'", "ansible_host"),
    ("h ansible_host='$(reboot)'", "ansible_host"),
    ("h ansible_host='`reboot`'", "ansible_host"),
    ("h ansible_host=kvm01\x00x", "NUL"),
    ("h qemu=/usr/bin/qemu\x00-x", "NUL"),
    ("h python=/usr/bin/python3\x00", "NUL"),
]


@pytest.mark.parametrize(("line", "named"), HOSTILE_LINES, ids=[repr(x[0]) for x in HOSTILE_LINES])
def test_a_hostile_inventory_value_is_an_inventory_error(line: str, named: str) -> None:
    text = f"[p]\nfine transport=local\n{line}\n"
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "hosts.txt")
    assert caught.value.line == 3, caught.value.message
    assert named in caught.value.message
    # The same in a [group:vars] section, for the keys a group may set.
    if line.startswith("h ") and named != "host name":
        key, _, value = line[2:].partition("=")
        with pytest.raises(InventoryError) as again:
            parse_inventory(f"[p]\nfine\n[p:vars]\n{key}={value}\n", "hosts.txt")
        assert again.value.line == 4, again.value.message


def test_ordinary_values_still_parse() -> None:
    inv = parse_inventory(
        "[p]\nkvm01 ansible_host=10.0.0.1 ansible_user=ops python=/usr/bin/python3 "
        "qemu=/usr/libexec/qemu-kvm machine_types=q35,pc-i440fx-7.2\n"
        "kvm02 ansible_host=kvm02.example.org host_root=/host\n",
        "hosts.txt",
    )
    assert [h.address for h in inv.hosts] == ["10.0.0.1", "kvm02.example.org"]


def test_collect_refuses_a_hostile_inventory_before_any_host(tmp_path: Path) -> None:
    spy, touched = _spy_python(tmp_path)
    inv = tmp_path / "hosts.txt"
    store = tmp_path / "store"
    for bad in ("qemu=--help", "machine_types=-h", "ansible_host='a;b'", "qemu=/bin/qemu\x00x"):
        inv.write_text(f"first transport=local python={spy}\nsecond transport=local {bad}\n")
        res = invoke(
            "collect", str(inv), "--store", str(store), env={"XDG_CACHE_HOME": str(tmp_path / "cache")}
        )
        assert res.returncode == 3, res.stdout + res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"error: {inv}:2: "), res.stderr
        assert not touched.exists() and not store.exists()


# --------------------------------------------------------------------------- host_root
def test_a_missing_host_root_is_a_facts_failure(tmp_path: Path, isolated_tmp: Path) -> None:
    assert "facts" in STAGES and STAGES.index("python") < STAGES.index("facts") < STAGES.index("qemu")
    missing = tmp_path / "no-such-root"
    res = run_cli("probe", "--host-root", str(missing), "--accel", "tcg", env={"TMPDIR": str(isolated_tmp)})
    assert res.returncode == 16, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["status"], doc["stage"], doc["error_code"]) == ("failed", "facts", "host-root")
    assert str(missing) in doc["error"]
    inv = tmp_path / "hosts.txt"
    inv.write_text(f"gone transport=local accel=tcg host_root={missing}\n")
    store = tmp_path / "store"
    res = invoke(
        "collect",
        str(inv),
        "--store",
        str(store),
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(isolated_tmp)},
    )
    assert res.returncode == 6, res.stdout + res.stderr
    row = latest_rows(store)["gone"]
    assert (row["status"], row["stage"]) == ("failed", "facts")
    assert "  facts: 1" in res.stdout
