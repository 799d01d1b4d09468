"""Cost of ``fleetcpu collect`` against a plain asyncssh loop doing the same sessions, in one run.

    python benchmarks/collect_bench.py [--hosts 200] [--concurrency 8,32] [--sshd-hosts 3]

Three paths, each measured as a fresh process from exec to exit (wall time, user+sys CPU and
peak RSS of that process, from ``wait4``):

- ``fleetcpu``: the real CLI, ``python -m fleetcpu collect INVENTORY --store DIR``: inventory,
  bundle, retries, verdicts, parsing every document, the Parquet store;
- ``reference``: this file's ``--reference`` mode, a bare asyncssh loop bounded by a semaphore
  that opens the same connections with the same key and known_hosts and runs the same command
  with the same bundle on stdin, reads stdout to the end and drops it: no parsing, no store;
- ``startup``: the CLI on a 1-host inventory, to separate the fixed cost (imports, store
  creation) from the per-host cost.

Hosts: ``--hosts`` simulated hosts (``tests/sshfixtures.FakeFleet``: asyncssh servers on
127.0.x.y answering with the canned 110 KB KVM document after 0.15 s, served by a thread of
this process, so their CPU is not counted), at each ``--concurrency``; then ``--sshd-hosts``
real OpenSSH sshd hosts running the real probe on the real QEMU (TCG), two inventory entries
per sshd. Ratios are fleetcpu / reference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclass
class Measure:
    wall: float
    cpu: float
    rss_mib: float
    rc: int


def measure(argv: list[str], env: dict[str, str]) -> Measure:
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode not in (0, 5):
        sys.stderr.write(err.decode(errors="replace"))
    return Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode)


# ----------------------------------------------------------------- the reference program


async def _reference(spec: dict[str, object]) -> None:
    import asyncio

    import asyncssh

    hosts = spec["hosts"]
    assert isinstance(hosts, list)
    command = Path(str(spec["command"])).read_text()
    payload = Path(str(spec["payload"])).read_bytes()
    keys = asyncssh.load_keypairs([str(spec["key"])])
    known = asyncssh.read_known_hosts([str(spec["known_hosts"])])
    gate = asyncio.Semaphore(int(str(spec["concurrency"])))

    async def one(address: str, port: int) -> int:
        async with gate, asyncssh.connect(address, port, client_keys=keys, known_hosts=known,
                                          config=[str(spec["config"])]) as conn:
            process = await conn.create_process(command, encoding=None)
            process.stdin.write(payload)
            out = await process.stdout.read()
            await process.wait_closed()
            return len(out)

    sizes = await asyncio.gather(*(one(a, p) for a, p in hosts))
    assert all(sizes), "a reference session returned nothing"


def reference_main(path: str) -> None:
    import asyncio

    asyncio.run(_reference(json.loads(Path(path).read_text())))


# ----------------------------------------------------------------- the runs


def _env(work: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "SSH_AUTH_SOCK": ""}


def compare(label: str, work: Path, inventory: Path, ssh_args: list[str], addresses: list[tuple[str, int]],
            concurrency: int, key: Path, config: Path, known_hosts: Path, n: int) -> list[str]:
    from fleetcpu.collect.bootstrap import payload, probe_args, remote_command
    from fleetcpu.collect.bundle import load_bundle
    from fleetcpu.collect.inventory import load_inventory

    env = _env(work)
    store = work / f"store-{label}-{concurrency}"
    ours = measure([sys.executable, "-m", "fleetcpu", "collect", str(inventory), "--store", str(store),
                    "--concurrency", str(concurrency), *ssh_args], env)
    host = load_inventory(inventory).hosts[0]
    (work / "command").write_text(remote_command(host.python, probe_args(host, 90.0)))
    (work / "payload").write_bytes(payload(load_bundle(work / "cache" / "fleetcpu")))
    spec = {"hosts": addresses, "command": str(work / "command"), "payload": str(work / "payload"),
            "key": str(key), "known_hosts": str(known_hosts), "config": str(config),
            "concurrency": concurrency}
    (work / "spec.json").write_text(json.dumps(spec))
    ref = measure([sys.executable, __file__, "--reference", str(work / "spec.json")], env)
    rows = []
    for name, m in (("fleetcpu", ours), ("reference", ref)):
        rows.append(f"{label:<22} {name:<10} {n:>5} {concurrency:>4} {m.wall:>7.2f} {n / m.wall:>8.1f} "
                    f"{m.cpu / n * 1000:>10.1f} {m.rss_mib:>8.0f}   rc={m.rc}")
    rows.append(f"{'':<22} {'ratio':<10} {'':>5} {'':>4} {ours.wall / ref.wall:>7.2f} "
                f"{(n / ours.wall) / (n / ref.wall):>8.2f} {ours.cpu / ref.cpu:>10.2f} "
                f"{ours.rss_mib / ref.rss_mib:>8.2f}")
    return rows


def startup(work: Path, inventory: Path, ssh_args: list[str]) -> Measure:
    return measure([sys.executable, "-m", "fleetcpu", "collect", str(inventory), "--store",
                    str(work / "store-startup"), *ssh_args], _env(work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--sshd-hosts", type=int, default=3)
    parser.add_argument("--reference", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        reference_main(args.reference)
        return

    from tests.sshfixtures import FakeFleet, start_sshd_fleet

    header = (f"{'path':<22} {'program':<10} {'hosts':>5} {'conc':>4} {'wall s':>7} {'hosts/s':>8} "
              f"{'CPU ms/host':>10} {'RSS MiB':>8}")
    print(header)
    work = Path(tempfile.mkdtemp(prefix="collect-bench-"))
    try:
        fleet = FakeFleet(work / "fleet", args.hosts).start()
        try:
            inv = fleet.inventory(work / "fleet.txt")
            addresses = [(h.address, h.port) for h in fleet.hosts]
            one = fleet.inventory(work / "one.txt", [fleet.hosts[0].name])
            s = startup(work, one, fleet.cli_args())
            print(f"{'asyncssh fleet':<22} {'startup':<10} {1:>5} {'':>4} {s.wall:>7.2f} {'':>8} "
                  f"{s.cpu * 1000:>10.1f} {s.rss_mib:>8.0f}   (1-host run: fixed cost)")
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                fleet.reset_stats()
                for row in compare("asyncssh fleet", work, inv, fleet.cli_args(), addresses, concurrency,
                                   fleet.client_key_path, fleet.ssh_config, fleet.known_hosts, args.hosts):
                    print(row)
                print(f"{'':<22} peak sessions on the hosts: {fleet.peak}")
        finally:
            fleet.stop()
        if args.sshd_hosts and (shutil.which("sshd") or Path("/usr/sbin/sshd").exists()):
            sshd = start_sshd_fleet(work / "sshd", [f"s{i}" for i in range(args.sshd_hosts)])
            try:
                kh = sshd.write_known_hosts(work / "sshd_known_hosts")
                lines = [f"{h.name}-{k} ansible_host={h.address} ansible_port={h.port} accel=tcg\n"
                         for h in sshd.hosts for k in range(2)]
                inv = work / "sshd.txt"
                inv.write_text("".join(lines))
                addresses = [(h.address, h.port) for h in sshd.hosts for _ in range(2)]
                for row in compare("real sshd, real probe", work, inv, sshd.cli_args(kh), addresses,
                                   len(addresses), sshd.client_key, sshd.empty_config, kh, len(lines)):
                    print(row)
            finally:
                sshd.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
