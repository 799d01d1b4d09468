"""``fleetcpu collect`` against Ansible on the same real-sshd hosts, in one run.

    python benchmarks/peer_bench.py [--hosts 16] [--forks 16] [--repeat 3] [--quick]
                                    [--plain-shell] [--pipelining]

Why Ansible: it is what operators of a KVM fleet already run against every host, and
``ansible -m setup`` (gather the host's facts) is the nearest thing it has to a probe. If
fleetcpu, which starts the host's own QEMU under KVM and asks it about every CPU model, took
about as long as ``-m setup``, a fleet-wide probe would be a slow chore; the target is at most
a quarter of ``-m setup``'s time. ``-m ping`` (connect, copy and run the smallest module) is
Ansible's floor on these hosts.

The hosts: ``--hosts`` real OpenSSH sshd on 127.0.0.2, .3, ... (``tests/support/sshd``), each in
a process of its own, so what the sessions cost on the host side (sshd, the login shell,
Python, QEMU) is not counted as either tool's CPU, only as its wall time. Both tools log in as
the same user with the same key, read the same inventory file (fleetcpu's inventory is a subset
of Ansible's INI) and the same empty ssh_config, and check host keys against one known_hosts
that holds every host's key (Ansible: ``StrictHostKeyChecking=yes``; fleetcpu: its default).
Each sshd has Debian's stock ``Subsystem sftp``, so Ansible copies its module as it would to a
real host (per host and module: five shell commands and one sftp transfer, six sessions on one
ControlPersist connection).

Everything else is each tool's production default, from cold: Ansible with its SSH
ControlPersist (a fresh control directory per run, its masters stopped after the run, outside
the timing) and no pipelining (``--pipelining`` adds an informational row with it on); both
use the host's ``/usr/bin/python3``, named in the inventory. fleetcpu with ``--concurrency``
equal to Ansible's ``-f``, the KVM probe (``accel=auto``: KVM when ``/dev/kvm`` works, TCG
otherwise) with the host's real QEMU.
Ansible runs from its own venv, ``.bench/ansible-venv`` (git-ignored), created with
ansible-core from PyPI on the first run and reused after; it is no dependency of fleetcpu.

The hosts' login shell is this machine's root shell, whose ``~/.bashrc`` (pyenv and cargo
set-up) costs ~110 ms of CPU in every SSH session: bash reads it for any command sshd runs.
``--plain-shell`` gives the hosts a shell that skips it (sshd sets ``SHLVL=1``), as on a KVM
host whose root has a stock ``.bashrc``: the same hosts minus that per-session cost, which
Ansible pays once per remote command and fleetcpu once per host.

Each run is a fresh process timed from exec to exit (wall time, and user+sys CPU of it and the
children it waited for, from ``wait4``; Ansible's ControlPersist masters detach, so their CPU is
not in its figure); runs are interleaved, and the table shows the median of ``--repeat``.
``host CPU`` is what the run cost the simulated hosts (every session: sshd, the login shell,
Python, QEMU), read from the sshds' reaped-children times once no session is left: on this
machine the hosts share the cores with the orchestrator, so (CPU + host CPU) / cores bounds the
wall time from below, and the ratio of those sums is the comparison that other work on the
machine disturbs least (printed after the wall-time ratios). ``--utilisation`` also samples the
machine's busy share every 50 ms during each fleetcpu run (``/proc/stat``; 1.0 = every core busy)
and prints it: where the wall time exceeds that bound, the cores were idle. A run counts only if every host
succeeded: Ansible's exit status 0 and a ``SUCCESS`` line for every host; fleetcpu's exit
status 0, an ``ok`` row for every host in the store, and nothing of its left on a host.
Ratios (fleetcpu / Ansible) are printed last.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
from installed import compile_package  # noqa: E402 - benchmarks/installed.py, beside this script

sys.path.insert(0, str(REPO))

ANSIBLE_VENV = REPO / ".bench" / "ansible-venv"
ANSIBLE_REQUIREMENT = "ansible-core"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
_RESULT = re.compile(r"^(\S+) \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!)", re.MULTILINE)


@dataclass
class Run:
    wall: float
    cpu: float
    rc: int
    stdout: str
    stderr: str
    #: CPU of every session on the simulated hosts during the run (sshd, login shell, Python, QEMU).
    host_cpu: float = 0.0
    #: The machine's busy share per ``SLOT`` seconds during the run (``--utilisation`` only).
    busy: list[float] = field(default_factory=list)


SLOT = 0.05


def _cpu_ticks() -> tuple[int, int]:
    """All and idle (idle + iowait) ticks of every core so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


class Utilisation:
    """The machine's busy share per ``SLOT`` seconds, sampled in a thread while a run goes on."""

    def __init__(self) -> None:
        self.busy: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Utilisation:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        total, idle = _cpu_ticks()
        while not self._done.wait(SLOT):
            now_total, now_idle = _cpu_ticks()
            spent = max(1, now_total - total)
            self.busy.append(1 - (now_idle - idle) / spent)
            total, idle = now_total, now_idle


def describe_utilisation(busy: list[float]) -> str:
    """The profile, and how long the run kept the machine less than three-quarters busy, and when."""
    low = [u < 0.75 for u in busy]
    start = next((i for i, x in enumerate(low) if not x), len(low))
    end = next((i for i, x in enumerate(reversed(low)) if not x), len(low))
    idle = sum(1 - u for u in busy) * SLOT * (os.cpu_count() or 1)
    return (
        f"{' '.join(f'{u:.1f}' for u in busy)}\n    below 3/4 busy: {start * SLOT:.2f} s at the "
        f"start, {end * SLOT:.2f} s at the end, {sum(low) * SLOT:.2f} s in all; "
        f"idle core-seconds {idle:.2f}"
    )


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Wall time from exec to exit, and the CPU of the process and of the children it reaped."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            wall,
            usage.ru_utime + usage.ru_stime,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def ansible_venv() -> Path:
    """The bench's own Ansible, installed once from PyPI; never one of fleetcpu's dependencies."""
    ansible = ANSIBLE_VENV / "bin" / "ansible"
    if not ansible.exists():
        print(f"installing {ANSIBLE_REQUIREMENT} into {ANSIBLE_VENV} (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ANSIBLE_VENV)], check=True)
        subprocess.run(
            [
                str(ANSIBLE_VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                ANSIBLE_REQUIREMENT,
            ],
            check=True,
        )
    return ansible


class Bench:
    def __init__(self, work: Path, hosts: int, forks: int, *, plain_shell: bool = False) -> None:
        from tests.support.sshd import start_sshd_fleet

        self.work = work
        self.forks = forks
        self.names = [f"h{i:02d}" for i in range(1, hosts + 1)]
        # SHLVL=1: bash then counts itself a nested shell and skips ~/.bashrc. The sftp
        # subsystem is Debian's stock sshd_config: without it Ansible's file transfer would
        # first fail over sftp, then scp, before falling back to dd through a shell.
        self.sshd = start_sshd_fleet(
            work / "sshd",
            self.names,
            setenv="SHLVL=1" if plain_shell else "",
            extra_config=f"Subsystem sftp {SFTP_SERVER}\n",
        )
        self.known_hosts = self.sshd.write_known_hosts(work / "known_hosts")
        self.inventory = work / "hosts.ini"
        # The system Python, named: root's shell here puts pyenv's shims first on PATH, where
        # Ansible's interpreter discovery picks a python3.13 shim that does not run, and a
        # KVM host has no pyenv. Both tools honour ansible_python_interpreter.
        self.inventory.write_text(
            "".join(
                f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root "
                "ansible_python_interpreter=/usr/bin/python3\n"
                for h in self.sshd.hosts
            )
        )
        self.ansible = ansible_venv()
        self.ansible_cfg = work / "ansible.cfg"
        self.ansible_cfg.write_text("")  # Ansible's defaults, whatever ~/.ansible.cfg says
        self.runs = 0
        base = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # the key, no agent
        self.fleetcpu_env = {**base, "XDG_CACHE_HOME": str(work / "cache")}
        self.ansible_env = {
            **base,
            "ANSIBLE_CONFIG": str(self.ansible_cfg),
            "ANSIBLE_HOME": str(work / "ansible-home"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_NOCOLOR": "1",
        }
        # The bundle is built once per fleetcpu version and cached; a fleet run finds it there.
        from fleetcpu.fleet.bundle import load_bundle

        load_bundle(work / "cache" / "fleetcpu")

    def stop(self) -> None:
        self.sshd.stop()

    def host_cpu(self) -> float:
        """CPU of the sessions the sshds have reaped so far: their cutime + cstime, once none is left.

        Waiting for every listener to have no child is also the check that neither tool leaves
        a session (or anything it started) running on a host.
        """
        deadline = time.monotonic() + 10
        pids = [h.proc.pid for h in self.sshd.hosts]
        while any(Path(f"/proc/{p}/task/{p}/children").read_text().split() for p in pids):
            if time.monotonic() > deadline:
                raise SystemExit("a session is still running on a simulated host 10 s after the run")
            time.sleep(0.05)
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def measured(self, path: Callable[[], Run], *, sample: bool = False) -> Run:
        before = self.host_cpu()
        if sample:
            with Utilisation() as utilisation:
                run = path()
            run.busy = utilisation.busy
        else:
            run = path()
        run.host_cpu = self.host_cpu() - before
        return run

    def fleetcpu(self) -> Run:
        self.runs += 1
        store = self.work / f"store-{self.runs}"
        run = timed(
            [
                sys.executable,
                "-m",
                "fleetcpu",
                "collect",
                str(self.inventory),
                "--store",
                str(store),
                "--concurrency",
                str(self.forks),
                *self.sshd.cli_args(self.known_hosts),
            ],
            self.fleetcpu_env,
            self.work,
        )
        self._check_fleetcpu(run, store)
        return run

    def _check_fleetcpu(self, run: Run, store: Path) -> None:
        from tests.support.sshd import latest_rows

        rows = latest_rows(store) if store.exists() else {}
        ok = sorted(n for n, r in rows.items() if r["status"] == "ok")
        if run.rc != 0 or ok != self.names:
            failed = {n: (r["stage"], r["error"]) for n, r in rows.items() if r["status"] != "ok"}
            raise SystemExit(
                f"fleetcpu collect: exit {run.rc}, {len(ok)} of {len(self.names)} ok: "
                f"{failed}\n{run.stderr[-3000:]}"
            )
        accels = sorted({str(r["accel"]) for r in rows.values()})
        self.fleetcpu_accel = ",".join(accels)
        procs, files = self.sshd.wait_no_leftovers()
        if procs or files:
            raise SystemExit(f"fleetcpu collect left on the hosts: {procs} {files}")

    def ansible_module(self, module: str, *, pipelining: bool = False) -> Run:
        self.runs += 1
        control = self.work / f"cp-{self.runs}"  # cold: no master left by an earlier run
        control.mkdir()
        ssh_args = (
            f"-F {self.sshd.empty_config} -o UserKnownHostsFile={self.known_hosts} "
            "-o StrictHostKeyChecking=yes"
        )
        env = {
            **self.ansible_env,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_PIPELINING": str(pipelining),
        }
        try:
            run = timed(
                [
                    str(self.ansible),
                    "all",
                    "-i",
                    str(self.inventory),
                    "-m",
                    module,
                    "-f",
                    str(self.forks),
                    "-o",
                    "-u",
                    "root",
                    "--private-key",
                    str(self.sshd.client_key),
                    "--ssh-common-args",
                    ssh_args,
                ],
                env,
                self.work,
            )
        finally:
            self._stop_masters(control)
        results = dict(_RESULT.findall(run.stdout))
        ok = sorted(n for n, verdict in results.items() if verdict == "SUCCESS")
        if run.rc != 0 or ok != self.names:
            raise SystemExit(
                f"ansible -m {module}: exit {run.rc}, {len(ok)} of {len(self.names)} "
                f"SUCCESS: {results}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
            )
        return run

    def _stop_masters(self, control: Path) -> None:
        """ControlPersist masters outlive ``ansible`` by 60 s: stop them so no run inherits one."""
        for socket in control.iterdir():
            subprocess.run(
                [
                    "ssh",
                    "-F",
                    str(self.sshd.empty_config),
                    "-o",
                    f"ControlPath={socket}",
                    "-O",
                    "exit",
                    "bench-host",
                ],
                capture_output=True,
                timeout=10,
                check=False,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--forks", type=int, default=16, help="Ansible's -f and fleetcpu's --concurrency")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run of each: within a minute")
    parser.add_argument(
        "--pipelining",
        action="store_true",
        help="also time -m setup with Ansible's pipelining on (not a default)",
    )
    parser.add_argument(
        "--plain-shell",
        action="store_true",
        help="hosts whose login shell reads no ~/.bashrc (see the docstring)",
    )
    parser.add_argument(
        "--utilisation", action="store_true", help="sample the machine's busy share during each fleetcpu run"
    )
    args = parser.parse_args()
    compile_package()
    repeat = 1 if args.quick else args.repeat

    work = Path(tempfile.mkdtemp(prefix="peer-bench-"))
    bench = Bench(work, args.hosts, args.forks, plain_shell=args.plain_shell)
    paths = {
        "fleetcpu collect": bench.fleetcpu,
        "ansible -m setup": lambda: bench.ansible_module("setup"),
        "ansible -m ping": lambda: bench.ansible_module("ping"),
    }
    if args.pipelining:
        paths["ansible -m setup, pipelining"] = lambda: bench.ansible_module("setup", pipelining=True)
    times: dict[str, list[Run]] = {name: [] for name in paths}
    try:
        for _ in range(repeat):
            for name, run in paths.items():
                sample = args.utilisation and name == "fleetcpu collect"
                times[name].append(bench.measured(run, sample=sample))
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)

    n = args.hosts
    version = subprocess.run(
        [str(bench.ansible), "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    shell = "login shell without ~/.bashrc" if args.plain_shell else "this machine's login shell"
    print(
        f"{n} real sshd hosts ({shell}), -f/--concurrency {args.forks}, median of {repeat}; "
        f"{version}; fleetcpu probe accel: {bench.fleetcpu_accel}"
    )
    print(f"{'program':<30} {'wall s':>7} {'min s':>7} {'s/host':>7} {'CPU s':>7} {'host CPU s':>10}")
    median = {}
    for name, runs in times.items():
        median[name] = statistics.median(r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs)
        host = statistics.median(r.host_cpu for r in runs)
        print(
            f"{name:<30} {median[name]:>7.2f} {min(r.wall for r in runs):>7.2f} "
            f"{median[name] / n:>7.3f} {cpu:>7.2f} {host:>10.2f}"
        )
    for run in times["fleetcpu collect"] if args.utilisation else []:
        print(
            f"fleetcpu collect, {run.wall:.2f} s, busy share per {SLOT * 1000:.0f} ms: "
            + describe_utilisation(run.busy)
        )
    ours = median["fleetcpu collect"]
    for name in paths:
        if name != "fleetcpu collect":
            print(
                f"ratio fleetcpu / {name:<21} {ours / median[name]:>6.3f}"
                + ("   (target <= 0.25)" if name == "ansible -m setup" else "")
            )
    total = {name: statistics.median(r.cpu + r.host_cpu for r in runs) for name, runs in times.items()}
    for name in paths:
        if name != "fleetcpu collect":
            print(f"CPU (tool + hosts) fleetcpu / {name:<8} {total['fleetcpu collect'] / total[name]:>6.3f}")


if __name__ == "__main__":
    main()
