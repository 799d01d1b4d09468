"""The README's tour runs as written, on the demo fleet, and prints what the README shows.

Sample output in a README goes stale silently; here every ``console`` block
of "The tour" is run through bash, as a reader would paste it, and its stdout
compared with the README's (times, run ids and durations aside). The demo
documents are also run *a month old*: what a user meets a month after a
release, when the documents' own time is 30 days behind the clock (the one
clock fleetcpu reads is now, so aging the documents is moving the clock).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fleetcpu.cli import baseline as baseline_command
from fleetcpu.store.layout import parse_rfc3339, rfc3339

from .conftest import REPO
from .support import readme_tour as tour

EXAMPLES = REPO / "examples"
DOCS = sorted(EXAMPLES.glob("*/*.json"))


def checkout_copy(dest: Path, age: timedelta = timedelta(0)) -> Path:
    """What the tour needs of a checkout (examples/, inventories/), the documents ``age`` old."""
    shutil.copytree(REPO / "inventories", dest / "inventories")
    for doc in DOCS:
        target = dest / doc.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(doc.read_text())
        data["time"] = rfc3339(parse_rfc3339(data["time"]) - age)
        target.write_text(json.dumps(data, indent=1))
    return dest


def demo_blocks() -> list[tour.Block]:
    return [b for b in tour.blocks() if not b.local]


def test_the_tour_has_the_commands_the_issue_promised() -> None:
    commands = " ".join(s.command for b in tour.blocks() for s in b.steps)
    for needle in (
        "fleetcpu import --pool",
        "fleetcpu hosts",
        "fleetcpu baseline --pool",
        "--format libvirt",
        "fleetcpu blockers",
        "fleetcpu check",
        "fleetcpu report",
        "fleetcpu collect inventories/local.txt",
        "fleetcpu verify",
    ):
        assert needle in commands, needle


@pytest.mark.parametrize("age", [timedelta(0), timedelta(days=30)], ids=["today", "a-month-later"])
def test_the_demo_tour_prints_what_the_readme_shows(tmp_path: Path, age: timedelta) -> None:
    cwd = checkout_copy(tmp_path / "checkout", age)
    store = tmp_path / "store"
    for block in demo_blocks():
        for step in block.steps:
            ran = tour.run(step, cwd, store)
            assert ran.status == step.status, f"{step.command}: {ran.stderr}"
            assert tour.normalize(ran.stdout) == tour.normalize(step.expected), step.command
    # Nobody was stale: every member counted (the first line says 4 host(s), as shown).
    ran = tour.run(tour.Step("fleetcpu baseline --pool intel --strict"), cwd, store)
    assert ran.status == 0, ran.stderr
    assert (cwd / "report.html").stat().st_size > 10_000


def test_a_month_old_documents_imported_by_their_own_time_are_stale(tmp_path: Path) -> None:
    """The control: without --collected-now the aged fleet is refused, so the test above can fail."""
    cwd = checkout_copy(tmp_path / "checkout", timedelta(days=30))
    store = tmp_path / "store"
    imported = tour.run(tour.Step("fleetcpu import --pool intel examples/intel/*.json"), cwd, store)
    assert imported.status == 0, imported.stderr
    ran = tour.run(tour.Step("fleetcpu baseline --pool intel --strict"), cwd, store)
    assert ran.status == 21, (ran.stdout, ran.stderr)
    assert "stale" in ran.stderr


def test_collected_now_is_recorded_as_such(tmp_path: Path) -> None:
    cwd = checkout_copy(tmp_path / "checkout", timedelta(days=30))
    store = tmp_path / "store"
    step = tour.Step("fleetcpu import --pool amd --collected-now examples/amd/amd-03.json")
    assert tour.run(step, cwd, store).status == 0
    runs = pq.read_table(next((store / "v1/runs").rglob("*.parquet"))).to_pylist()
    hosts = pq.read_table(next((store / "v1/hosts").rglob("*.parquet"))).to_pylist()
    assert [r["command"] for r in runs] == ["import --collected-now"]
    doc_time = parse_rfc3339(json.loads((cwd / "examples/amd/amd-03.json").read_text())["time"])
    (row,) = hosts
    assert row["probe_time"] == doc_time
    assert row["collected_at"] - doc_time > timedelta(days=29)
    assert row["collected_at"] == runs[0]["started_at"]


def test_every_format_works_on_the_demo_pools(tmp_path: Path) -> None:
    """Each --format, with the system cpu_map (what the first README command installs)."""
    cwd = checkout_copy(tmp_path / "checkout")
    store = tmp_path / "store"
    for pool in ("intel", "amd"):
        step = tour.Step(f"fleetcpu import --collected-now --pool {pool} examples/{pool}/*.json")
        assert tour.run(step, cwd, store).status == 0
    (fmt,) = [p for p in baseline_command.params if p.name == "fmt"]
    choices = fmt.type.choices  # type: ignore[attr-defined]
    assert {"libvirt", "nova", "kubevirt"} <= set(choices)
    for pool in ("intel", "amd"):
        for choice in choices:
            ran = tour.run(tour.Step(f"fleetcpu baseline --pool {pool} --format {choice}"), cwd, store)
            assert ran.status == 0, (pool, choice, ran.stderr)
            assert ran.stdout, (pool, choice)


def test_the_local_block_has_the_shape_this_machine_prints(tmp_path: Path, qemu_bin: str) -> None:
    """collect, hosts, baseline, verify against inventories/local.txt, on this machine's QEMU.

    The output names this machine's CPU, so it is held line by line to the
    README's first word (and the line count), exactly only where the README
    shows what every machine prints.
    """
    (block,) = [b for b in tour.blocks() if b.local]
    cwd = checkout_copy(tmp_path / "checkout")
    store = tmp_path / "store"
    for step in block.steps:
        ran = tour.run(step, cwd, store)
        assert ran.status == step.status, f"{step.command}: {ran.stderr}"
        got, want = tour.normalize(ran.stdout), tour.normalize(step.expected)
        assert len(got) == len(want), (step.command, got)
        assert [g.split()[:1] for g in got] == [w.split()[:1] for w in want], step.command


def test_scripts_run_sh_runs_the_local_blocks_first_commands() -> None:
    """The README says the first command runs them: hold it to scripts/run.sh."""
    run_sh = [
        line for line in (REPO / "scripts/run.sh").read_text().splitlines() if line.startswith("fleetcpu ")
    ]
    (block,) = [b for b in tour.blocks() if b.local]
    assert run_sh == [s.command for s in block.steps[: len(run_sh)]]
    assert len(run_sh) == 3


def test_the_readme_counts_the_features_it_shows() -> None:
    (block,) = [b for b in tour.blocks() if b.local]
    (step,) = [s for s in block.steps if s.command == "fleetcpu baseline --pool local"]
    shown = step.expected[0].split(",")
    text = tour.README.read_text()
    m = re.search(r"extended with the (\d+)\s+features", text)
    assert m, "the README no longer counts the local baseline's features"
    assert int(m.group(1)) == sum(1 for f in shown if f.startswith("+"))


def test_the_generator_reproduces_the_examples(tmp_path: Path) -> None:
    """scripts/gen_examples.py, run now, writes these files (times and durations aside)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/gen_examples.py"), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    def stable(value: object) -> object:
        if isinstance(value, dict):
            return {k: stable(v) for k, v in value.items() if k not in ("time", "duration_s")}
        if isinstance(value, list):
            return [stable(v) for v in value]
        return value

    made = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("*/*.json"))
    assert made == [p.relative_to(EXAMPLES) for p in DOCS]
    for rel in made:
        fresh = json.loads((tmp_path / rel).read_text())
        assert stable(fresh) == stable(json.loads((EXAMPLES / rel).read_text())), rel
        assert fresh["host"]["synthetic"].startswith("replay:x86_64-cpuid-")


def test_the_readme_lays_out_the_test_data_as_the_suite_finds_it() -> None:
    """Every directory the README's data table names is where the suite reads it from."""
    from .conftest import REALDATA

    text = tour.README.read_text()
    section = text[text.index("### The test data") :]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    assert "FLEETCPU_REALDATA" in section and "../shared/realdata" in section
    named = re.findall(r"^\| `([a-z]+/(?:[a-z_]+/)?)` \|", section, re.M)
    assert len(named) == 6, named
    for rel in named:
        assert (REALDATA / rel).is_dir(), rel
    # and every libvirt directory there is in the table
    assert {
        f"libvirt/{p.name}/"
        for p in (REALDATA / "libvirt").iterdir()
        if p.is_dir() and p.name != "cputestdata-7.0.0-legacy-baseline"
    } <= set(named)
