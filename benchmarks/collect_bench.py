"""Fan-out: ``fleetcpu collect`` against the SSH floor (an asyncssh connect plus ``true``), in one run.

    python benchmarks/collect_bench.py            # 100 and 1,000 hosts x concurrency 16/64/256, then 10,000
    python benchmarks/collect_bench.py --quick    # under a minute: 100 and 1,000 hosts at 64

Why a floor and not absolute numbers: on a shared 2-core machine the wall
time moves with the neighbours, but two programs measured back to back over
the same hosts move together. The floor is the least any SSH orchestrator can
do per host: TCP, key exchange, host-key check, public-key login, one session
running ``true``, close.

Each program is measured as a fresh process from exec to exit (wall time,
user+sys CPU and peak RSS of that process alone, from ``wait4``):

- ``collect``: the real CLI, ``python -m fleetcpu collect INVENTORY --store DIR
  --concurrency C`` with production defaults (host keys checked against a
  known_hosts holding every simulated host, retries, the Parquet store);
- ``floor``: this file's ``--floor`` mode: the same hosts, key, known_hosts and
  concurrency; a pool of workers pulling from one iterator (as fleetcpu's
  fan-out does) running ``true`` per host.

The simulated hosts are asyncssh servers in ``--servers`` worker processes of
their own (this file's ``--serve`` mode), each serving many 127.2.x.y
addresses with its own ed25519 host key per address. Their CPU is never
counted as the orchestrator's (it is shown apart, per host). A session
running fleetcpu's command is checked to carry fleetcpu's bootstrap, reads
the bundle from stdin and verifies its sha256, then prints a real probe
document (``tests/golden/probe-kvm-q35.json`` re-serialised as the probe
prints it, one of ``--variants`` CPUs, the host's name as its hostname) and
exits 0; a session running ``true`` exits 0. There is no artificial probe
delay (``--delay``, default 0): the host answers as fast as its process can,
so what is measured is the orchestrator.

The matrix measures repeat runs into one store: a first collect over the
largest host count writes every host's detail rows (a new fleet, reported as
its own row), and from then on ``cpu_digest`` finds every host's detail
unchanged (the steady state of an hourly collect). The 10,000-host run gets
a store of its own, first run included.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
from installed import compile_package  # noqa: E402 - benchmarks/installed.py, beside this script

sys.path.insert(0, str(REPO))

GOLDEN = REPO / "tests" / "golden" / "probe-kvm-q35.json"
#: Addresses of the simulated hosts: 127.2.0.1 ... (away from the tests' 127.0.x.y fleets).
NET = 2


@dataclass
class Measure:
    wall: float
    cpu: float
    rss_mib: float
    rc: int
    #: CPU seconds the simulated hosts spent meanwhile (all server processes).
    server_cpu: float = 0.0


def measure(
    argv: list[str],
    env: dict[str, str],
    servers: list[subprocess.Popen[bytes]] | None = None,
    out: Path | None = None,
) -> Measure:
    """Run ``argv`` as a fresh process; its own wall, CPU and peak RSS from ``wait4``."""
    before = sum(_proc_cpu(p.pid) for p in servers or ())
    started = time.monotonic()
    with open(out or os.devnull, "wb") as sink:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=sink, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    server_cpu = sum(_proc_cpu(p.pid) for p in servers or ()) - before
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
    return Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, server_cpu)


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def address(i: int) -> str:
    return f"127.{NET}.{i // 250}.{1 + i % 250}"


# ----------------------------------------------------------------- the simulated hosts


def documents(variants: int) -> list[bytes]:
    """The golden document as the probe prints it, in ``variants`` CPUs; ``@HOST@`` marks the hostname."""
    from fleetcpu.probe.document_decoder import document_from_json

    golden = document_from_json(GOLDEN.read_text())
    out = []
    for v in range(variants):
        raw = json.loads(golden.to_json())
        raw["host"]["hostname"] = "@HOST@"
        if v:  # another CPU: a different model-id and one feature fewer in the full expansion
            for mp in raw["machine_types"]:
                mp["vcpu"]["model_id"] = f"AMD EPYC variant {v}"
                features = mp["full_expansion"]["features"]
                features.pop(sorted(features)[v % len(features)])
        out.append(document_from_json(json.dumps(raw)).to_json().encode() + b"\n")
    return out


async def _serve(spec: dict[str, Any]) -> None:
    import asyncssh

    from fleetcpu.fleet import bootstrap_host
    from fleetcpu.fleet.bootstrap import host_script

    client = asyncssh.import_authorized_keys(spec["client_public"])
    quoted_script = shlex.quote(host_script())
    docs = [d.split(b"@HOST@") for d in documents(spec["variants"])]
    delay = float(spec["delay"])

    async def session(process: asyncssh.SSHServerProcess[bytes], name: str, doc: list[bytes]) -> None:
        command = process.command or ""
        try:
            if command == "true":
                process.exit(0)
                return
            if not command.startswith("exec ") or f" -E -s -c {quoted_script} " not in command:
                process.stderr.write(b"simulated host: not the fleetcpu bootstrap\n")
                process.exit(99)
                return
            fields = (await process.stdin.readline()).split()
            if len(fields) != 3 or fields[0] != bootstrap_host.MAGIC:
                process.exit(bootstrap_host.EXIT_BAD_BUNDLE)
                return
            data = await process.stdin.readexactly(int(fields[1]))
            if hashlib.sha256(data).hexdigest().encode() != fields[2]:
                process.stderr.write(b"fleetcpu-bootstrap: upload bundle checksum mismatch\n")
                process.exit(bootstrap_host.EXIT_BAD_BUNDLE)
                return
            if delay:
                await asyncio.sleep(delay)
            process.stdout.write(name.encode().join(doc))
            process.exit(0)
        except (asyncssh.Error, OSError, asyncio.IncompleteReadError, EOFError):
            process.close()

    lines = []
    for i in spec["hosts"]:
        key = asyncssh.generate_private_key("ssh-ed25519")
        name = f"sim{i:05d}"
        doc = docs[i % len(docs)]
        server = await asyncssh.listen(
            address(i),
            0,
            server_host_keys=[key],
            authorized_client_keys=client,
            process_factory=lambda p, n=name, d=doc: session(p, n, d),
            encoding=None,
            backlog=1024,
            reuse_address=True,
        )
        port = server.sockets[0].getsockname()[1]
        public = key.export_public_key("openssh").decode().split()
        lines.append(json.dumps([i, name, address(i), port, f"{public[0]} {public[1]}"]))
    Path(spec["out"]).write_text("\n".join(lines) + "\n")
    print("ready", flush=True)
    await asyncio.Event().wait()


# ----------------------------------------------------------------- the floor


async def _floor(spec: dict[str, Any]) -> None:
    import asyncssh

    keys = asyncssh.load_keypairs([spec["key"]])
    known = asyncssh.read_known_hosts([spec["known_hosts"]])
    hosts: Iterator[list[Any]] = iter(spec["hosts"])
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for addr, port in hosts:
            async with asyncssh.connect(
                addr, port, client_keys=keys, known_hosts=known, config=[spec["config"]]
            ) as conn:
                result = await conn.run("true", check=False)
                failed += result.exit_status != 0

    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    if failed:
        raise SystemExit(f"floor: {failed} host(s) did not run true")


# ----------------------------------------------------------------- the runs


class Fleet:
    """``count`` simulated hosts in ``servers`` processes, with the client's key, config and known_hosts."""

    def __init__(self, work: Path, count: int, servers: int, variants: int, delay: float) -> None:
        import asyncssh

        self.work = work
        self.key = work / "client_ed25519"
        client = asyncssh.generate_private_key("ssh-ed25519")
        client.write_private_key(str(self.key))
        public = client.export_public_key("openssh").decode()
        self.config = work / "ssh_config"
        self.config.write_text("")
        self.procs: list[subprocess.Popen[bytes]] = []
        parts = [list(range(count))[s::servers] for s in range(servers)]
        for s, part in enumerate(parts):
            spec = work / f"serve-{s}.json"
            spec.write_text(
                json.dumps(
                    {
                        "hosts": part,
                        "client_public": public,
                        "variants": variants,
                        "delay": delay,
                        "out": str(work / f"hosts-{s}.jsonl"),
                    }
                )
            )
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve", str(spec)], stdout=subprocess.PIPE, cwd=REPO
                )
            )
        for proc in self.procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError("a simulated-host server did not start")
        rows = sorted(
            json.loads(line)
            for s in range(servers)
            for line in (work / f"hosts-{s}.jsonl").read_text().splitlines()
        )
        self.hosts = [(name, addr, port) for _, name, addr, port, _ in rows]
        self.known_hosts = work / "known_hosts"
        self.known_hosts.write_text("".join(f"[{addr}]:{port} {pub}\n" for _, _, addr, port, pub in rows))

    def inventory(self, n: int) -> Path:
        path = self.work / f"inventory-{n}.txt"
        path.write_text(
            "".join(
                f"{name} ansible_host={addr} ansible_port={port}\n" for name, addr, port in self.hosts[:n]
            )
        )
        return path

    def cli_args(self) -> list[str]:
        return ["-i", str(self.key), "--ssh-config", str(self.config), "--known-hosts", str(self.known_hosts)]

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


@dataclass
class Cell:
    label: str
    hosts: int
    concurrency: int
    collect: Measure
    floor: Measure | None


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CACHE_HOME": str(work / "cache"),
        "SSH_AUTH_SOCK": "",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def run_collect(fleet: Fleet, n: int, concurrency: int, store: Path) -> Measure:
    m = measure(
        [
            sys.executable,
            "-m",
            "fleetcpu",
            "collect",
            str(fleet.inventory(n)),
            "--store",
            str(store),
            "--concurrency",
            str(concurrency),
            *fleet.cli_args(),
        ],
        _env(fleet.work),
        fleet.procs,
    )
    if m.rc != 0:
        raise SystemExit(f"collect over {n} hosts at {concurrency} exited {m.rc}")
    return m


def run_floor(fleet: Fleet, n: int, concurrency: int) -> Measure:
    spec = fleet.work / "floor.json"
    spec.write_text(
        json.dumps(
            {
                "hosts": [[a, p] for _, a, p in fleet.hosts[:n]],
                "key": str(fleet.key),
                "known_hosts": str(fleet.known_hosts),
                "config": str(fleet.config),
                "concurrency": concurrency,
            }
        )
    )
    m = measure([sys.executable, __file__, "--floor", str(spec)], _env(fleet.work), fleet.procs)
    if m.rc != 0:
        raise SystemExit(f"floor over {n} hosts at {concurrency} exited {m.rc}")
    return m


def fmt(label: str, program: str, n: int, c: int, m: Measure) -> str:
    return (
        f"{label:<11} {program:<8} {n:>6} {c:>4} {m.wall:>7.2f} {n / m.wall:>8.1f} "
        f"{m.cpu / n * 1000:>8.2f} {m.rss_mib:>7.0f} {m.server_cpu / n * 1000:>10.2f}"
    )


HEADER = (
    f"{'run':<11} {'program':<8} {'hosts':>6} {'conc':>4} {'wall s':>7} {'hosts/s':>8} "
    f"{'CPU ms/h':>8} {'RSS MiB':>7} {'srv ms/h':>10}"
)


def summary(cells: list[Cell]) -> None:
    """The ratios, last, as the issue asks: what a reader compares first."""
    print(
        "\nratios, collect / floor over the same hosts at the same concurrency "
        "(wall: lower is better, target <= 2):"
    )
    for cell in cells:
        if cell.floor is None:
            continue
        f, o = cell.floor, cell.collect
        print(
            f"  {cell.hosts:>6} hosts c={cell.concurrency:<4} wall x{o.wall / f.wall:.2f}  "
            f"CPU x{o.cpu / f.cpu:.2f}  RSS x{o.rss_mib / f.rss_mib:.2f}  "
            f"({cell.hosts / o.wall:.0f} vs {cell.hosts / f.wall:.0f} hosts/s)"
        )
    for label in ("repeat", "first"):
        rss: dict[int, float] = {}
        for c in cells:
            if c.label == label:
                rss[c.hosts] = max(rss.get(c.hosts, 0.0), c.collect.rss_mib)
        if len(rss) > 1:
            print(
                f"  peak RSS of collect, {label} runs, by host count (largest per count): "
                + ", ".join(f"{n}: {mib:.0f} MiB" for n, mib in sorted(rss.items()))
            )
    for c in cells:
        print(
            f"  collect CPU per host, {c.label} run, {c.hosts} hosts c={c.concurrency}: "
            f"{c.collect.cpu / c.hosts * 1000:.2f} ms"
            + (f" (floor {c.floor.cpu / c.hosts * 1000:.2f} ms)" if c.floor else "")
        )


def adopt(store: Path, work: Path) -> None:
    """Adopt the collected pool's baseline (the inventory names no pool: ``default``)."""
    subprocess.run(
        [sys.executable, "-m", "fleetcpu", "adopt", "--pool", "default", "--yes", "--store", str(store)],
        env=_env(work),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print("adopted pool default's baseline: repeat runs judge every host")


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute: 100 and 1,000 hosts at 64")
    parser.add_argument("--hosts", help="comma list of host counts (default 100,1000)")
    parser.add_argument("--concurrency", help="comma list (default 16,64,256)")
    parser.add_argument(
        "--big", type=int, help="then this many hosts at the best concurrency (default 10000; 0 with --quick)"
    )
    parser.add_argument(
        "--big-concurrency",
        type=int,
        help="for the --big run (default: the concurrency with the most hosts/s at the largest --hosts)",
    )
    parser.add_argument("--servers", type=int, default=4, help="simulated-host server processes")
    parser.add_argument("--variants", type=int, default=4, help="distinct CPUs among the hosts")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds a simulated probe takes")
    parser.add_argument(
        "--adopt",
        action="store_true",
        help="adopt the pool's baseline after each first run, so every repeat "
        "run judges every host against it (docs/contract.md)",
    )
    parser.add_argument("--serve", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--floor", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    compile_package()
    if args.serve:
        asyncio.run(_serve(json.loads(Path(args.serve).read_text())))
        return
    if args.floor:
        asyncio.run(_floor(json.loads(Path(args.floor).read_text())))
        return

    counts = [int(x) for x in (args.hosts or "100,1000").split(",")]
    concs = [int(x) for x in (args.concurrency or ("64" if args.quick else "16,64,256")).split(",")]
    big = args.big if args.big is not None else (0 if args.quick else 10_000)
    work = Path(tempfile.mkdtemp(prefix="collect-bench-"))
    cells: list[Cell] = []
    try:
        t0 = time.monotonic()
        fleet = Fleet(work, max([*counts, big]), args.servers, args.variants, args.delay)
        print(
            f"{len(fleet.hosts)} simulated hosts in {args.servers} server processes, "
            f"started in {time.monotonic() - t0:.1f}s; {args.variants} CPU variants, "
            f"probe delay {args.delay:g}s"
        )
        print(HEADER)
        try:
            one = fleet.inventory(1)
            s = measure(
                [
                    sys.executable,
                    "-m",
                    "fleetcpu",
                    "collect",
                    str(one),
                    "--store",
                    str(work / "store-startup"),
                    *fleet.cli_args(),
                ],
                _env(work),
                fleet.procs,
            )
            print(fmt("startup", "collect", 1, 1, s) + "   (1 host: imports, store, bundle)")
            store = work / "store"
            fill = max(256, *concs)  # the fastest way to fill the store, and reported too
            first = run_collect(fleet, max(counts), fill, store)
            print(fmt("first run", "collect", max(counts), fill, first) + "   (every host's detail new)")
            cells.append(Cell("first", max(counts), fill, first, None))
            if args.adopt:
                adopt(store, work)
            for n in counts:
                for c in concs:
                    floor = run_floor(fleet, n, c)
                    ours = run_collect(fleet, n, c, store)
                    print(fmt("repeat run", "collect", n, c, ours))
                    print(fmt("", "floor", n, c, floor))
                    cells.append(Cell("repeat", n, c, ours, floor))
            if big:
                best = (
                    args.big_concurrency
                    or max(
                        (c for c in cells if c.hosts == max(counts) and c.label == "repeat"),
                        key=lambda c: c.hosts / c.collect.wall,
                    ).concurrency
                )
                store = work / f"store-{big}"
                first = run_collect(fleet, big, best, store)
                print(fmt("first run", "collect", big, best, first) + "   (every host's detail new)")
                cells.append(Cell("first", big, best, first, None))
                if args.adopt:
                    adopt(store, work)
                floor = run_floor(fleet, big, best)
                ours = run_collect(fleet, big, best, store)
                print(fmt("repeat run", "collect", big, best, ours))
                print(fmt("", "floor", big, best, floor))
                cells.append(Cell("repeat", big, best, ours, floor))
        finally:
            fleet.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary(cells)


if __name__ == "__main__":
    main()
