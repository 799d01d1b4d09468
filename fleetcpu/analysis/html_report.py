"""``fleetcpu report``: the notebook's figures in one self-contained HTML file.

For the people who decide but do not run Jupyter: one file to mail or attach
to a change ticket. Self-contained means it opens offline and in a locked-down
browser: images are embedded as ``data:`` PNGs, the style is inline, nothing
is fetched. Every section renders even when the data behind it is missing
(an empty store, a one-host pool, hosts that never succeeded, one run), and
then says what is missing and how to get it instead of raising.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import __version__
from ..baseline.select import DEFAULT_MAX_AGE, age_text
from ..store import Store
from ..vocabulary import Accel
from . import plots
from .history import drift, failures, latest_hosts, runs_since
from .pool import (
    BlockerTables,
    PoolData,
    blockers,
    coverage,
    load_pool,
    summary_row,
    usability_matrix,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE_ROWS = 30
#: How far back drift and failures look: a month of hourly runs, read one run at a time.
DEFAULT_HISTORY = timedelta(days=30)


@dataclass
class Section:
    """One heading: how to read it, its figure (PNG bytes) or why there is none, its tables."""

    title: str
    how_to_read: str
    image: bytes | None = None
    missing: str | None = None
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    preformatted: list[str] = field(default_factory=list)


#: Every section, in report order, with the one line that says how to read it.
HOW_TO_READ = {
    "Pool summary": "Who is in the pool, what they run, and the CPU every member can run: "
    "start guests with the first -cpu string.",
    "Hosts": "The latest record of every host in the pool; a failed host keeps its last good "
    "data until it is older than --max-age.",
    "Feature coverage": "A row per group of identical hosts, a column per feature that differs "
    "between them: a white cell is a feature that host cannot give a guest, "
    "so the pool cannot have it.",
    "Model usability": "A column per QEMU CPU model usable on some hosts only: white means that "
    "host's QEMU refuses the model (the blockers table names the features it "
    "lacks).",
    "Blockers": "Left: each feature some member offers but the pool lacks, by how many hosts "
    "block it (one blocker is cheap to fix). Right: what removing each group of "
    "identical hosts would gain; the top bar is the best trade.",
    "Drift": "One marker per change of a host between two successful runs: red lost features, "
    "green gained, grey only QEMU/kernel/microcode changed; the label says what.",
    "Failures": "Failed hosts of the pool per run, by the stage that failed (ssh, bootstrap, "
    "qemu, ...): a bar that grows is a fleet problem.",
}


def _section(title: str) -> Section:
    return Section(title, HOW_TO_READ[title])


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if value is pd.NaT:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return value


def _display(frame: pd.DataFrame, limit: int = TABLE_ROWS) -> pd.DataFrame:
    shown = frame.head(limit).copy()
    for column in shown.columns:
        shown[column] = shown[column].map(_cell)
    return shown


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _summary(data: PoolData, row: dict[str, Any]) -> Section:
    sec = _section("Pool summary")
    facts = pd.DataFrame(
        [(k, v) for k, v in row.items() if k not in ("cpu", "custom")], columns=["", "value"]
    )
    sec.tables.append(("", facts))
    if row["cpu"]:
        sec.preformatted += [f"-cpu {row['cpu']}", f"-cpu {row['custom']}"]
    else:
        sec.missing = f"no baseline: {row['problem']}"
    if data.missing:
        sec.tables.append(
            (
                f"{len(data.missing)} member(s) missing from the answer",
                pd.DataFrame(
                    [(m.host, m.code, m.message) for m in data.missing], columns=["host", "code", "message"]
                ),
            )
        )
    if data.notices:
        sec.tables.append(
            (
                "notices",
                pd.DataFrame([(n.code, n.message) for n in data.notices], columns=["code", "message"]),
            )
        )
    return sec


def _hosts(store: Store, data: PoolData) -> Section:
    sec = _section("Hosts")
    if data.states:
        frame = latest_hosts(store, data.pool)
        sec.tables.append(
            (
                "",
                frame[
                    [
                        "host",
                        "status",
                        "stage",
                        "error",
                        "accel",
                        "qemu_version",
                        "abi_level",
                        "collected_at",
                        "last_ok_kvm",
                        "last_ok_tcg",
                    ]
                ],
            )
        )
    else:
        sec.missing = data.problem or "no host"
    return sec


def _matrix_section(title: str, matrix: pd.DataFrame, data: PoolData, draw: Any) -> Section:
    sec = _section(title)
    if data.problem:
        sec.missing = f"nothing to draw: {data.problem}"
    elif matrix.empty:
        sec.missing = "nothing to draw: no member data"
    else:
        sec.image = png(
            draw(matrix, f"pool {data.pool} on {data.machine_type} ({data.accel}), {len(matrix)} member(s)")
        )
    return sec


def _blockers(data: PoolData, tables: BlockerTables) -> Section:
    sec = _section("Blockers")
    if tables.problem:
        sec.missing = f"nothing to explain: {tables.problem}"
        return sec
    sec.image = png(plots.plot_blockers(tables.features, tables.groups))
    if len(data.members) < 2:
        sec.missing = "a one-member pool has no blockers: every feature its host offers is kept"
    sec.tables.append(
        (
            "features the pool lacks",
            tables.features.sort_values(["n_hosts", "feature"])[["feature", "reason", "n_hosts", "hosts"]],
        )
    )
    if not tables.groups.empty:
        sec.tables.append(
            (
                "without one group of identical hosts",
                tables.groups[
                    [
                        "group",
                        "n_hosts",
                        "hosts",
                        "n_features",
                        "features_gained",
                        "model_before",
                        "model_after",
                        "score",
                    ]
                ],
            )
        )
    return sec


def _drift(store: Store, data: PoolData, runs: int, since: str | None, history: str) -> Section:
    sec = _section("Drift")
    if runs < 2:
        sec.missing = f"{runs} run stored: drift needs two runs of the same host (collect again later)"
        return sec
    if since is None:
        sec.missing = f"no run in the last {history} (--history)"
        return sec
    frame = drift(store, data.pool, accel=data.accel, machine_type=data.machine_type, since=since)
    if frame.empty:
        sec.missing = f"no host of the pool changed between its successful runs in {history}"
        return sec
    sec.image = png(plots.plot_drift(frame))
    sec.tables.append(
        (
            "latest changes",
            frame.sort_values("collected_at", ascending=False)[
                [
                    "collected_at",
                    "host",
                    "features_removed",
                    "features_added",
                    "models_lost",
                    "models_gained",
                    "changed",
                    "microcode_before",
                    "microcode",
                    "kernel_release",
                    "qemu_version",
                ]
            ],
        )
    )
    return sec


def _failures(store: Store, data: PoolData, since: str | None, history: str) -> Section:
    sec = _section("Failures")
    if data.problem and not data.states:
        sec.missing = data.problem
        return sec
    frame = failures(store, data.pool, since=since) if since is not None else None
    if frame is None or frame.empty:
        sec.missing = f"no host of the pool failed in the last {history}"
        return sec
    sec.image = png(plots.plot_failures(frame))
    return sec


def _empty(root: Path, pool: str, accel: str) -> tuple[PoolData, list[Section]]:
    problem = f"the store at {root} is empty: run fleetcpu collect INVENTORY (or fleetcpu import) first"
    data = PoolData(pool, accel, None, (), (), (), (), problem=problem)
    secs = [Section(title, how, missing=problem) for title, how in HOW_TO_READ.items()]
    return data, secs


def sections(
    store: Store | None,
    pool: str,
    *,
    root: Path,
    accel: str = Accel.KVM,
    machine_type: str | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
    history: timedelta = DEFAULT_HISTORY,
    now: datetime | None = None,
) -> tuple[PoolData, list[Section]]:
    """Every section of the report for one pool, figures rendered. ``store`` is None for a
    missing or empty store: the report then says so. Raises UnknownPoolError only for a pool
    a non-empty store does not know: a typo in --pool is an error, not an empty report."""
    now = now or datetime.now(UTC)
    if store is None or not store.pools():
        return _empty(root, pool, accel)
    store.latest(pool)
    data = load_pool(store, pool, accel=accel, machine_type=machine_type, max_age=max_age, now=now)
    runs = len(store.runs())
    since = runs_since(store, history, now)
    tables = blockers(data)
    window = age_text(history)
    return data, [
        _summary(data, summary_row(data, tables)),
        _hosts(store, data),
        _matrix_section("Feature coverage", coverage(data), data, plots.plot_coverage),
        _matrix_section("Model usability", usability_matrix(data), data, plots.plot_usability),
        _blockers(data, tables),
        _drift(store, data, runs, since, window),
        _failures(store, data, since, window),
    ]


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ccc;margin-top:2em}
.how{color:#555;font-style:italic} .missing{background:#fff4e0;border-left:4px solid #e8a33d;
padding:.4em .8em} pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;font-size:12px;margin:.5em 0} td,th{border:1px solid #ddd;
padding:2px 6px;text-align:left;vertical-align:top} img{max-width:100%;height:auto}
.meta{color:#666}
"""


def _table_html(caption: str, frame: pd.DataFrame) -> str:
    head = f"<h3>{html.escape(caption)}</h3>" if caption else ""
    more = (
        f"<p class='meta'>{len(frame) - TABLE_ROWS} more rows not shown (fleetcpu.analysis has them all)</p>"
        if len(frame) > TABLE_ROWS
        else ""
    )
    return head + _display(frame).to_html(index=False, escape=True, na_rep="", border=0) + more


def render_html(root: Path, data: PoolData, secs: Sequence[Section], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    title = f"fleetcpu report: pool {data.pool}"
    out = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(data.accel)} data"
        f"{', machine type ' + html.escape(data.machine_type) if data.machine_type else ''}; "
        f"generated {_when(now)} by fleetcpu {html.escape(__version__)} from "
        f"{html.escape(str(root))}</p>",
    ]
    if data.problem:
        out.append(f"<p class='missing'>{html.escape(data.problem)}</p>")
    for sec in secs:
        out.append(f"<h2>{html.escape(sec.title)}</h2>")
        out.append(f"<p class='how'>{html.escape(sec.how_to_read)}</p>")
        if sec.missing:
            out.append(f"<p class='missing'>{html.escape(sec.missing)}</p>")
        if sec.image:
            encoded = base64.b64encode(sec.image).decode("ascii")
            out.append(
                f"<figure><img alt='{html.escape(sec.title)}' src='data:image/png;base64,{encoded}'></figure>"
            )
        out += [f"<pre>{html.escape(text)}</pre>" for text in sec.preformatted]
        out += [_table_html(caption, frame) for caption, frame in sec.tables]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_report(
    store: Store | None,
    pool: str,
    *,
    root: Path,
    accel: str = Accel.KVM,
    machine_type: str | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
    history: timedelta = DEFAULT_HISTORY,
    now: datetime | None = None,
) -> tuple[str, PoolData, list[Section]]:
    """The report's HTML, and the pool data and sections it was made from (for the CLI's
    summary line)."""
    now = now or datetime.now(UTC)
    data, secs = sections(
        store,
        pool,
        root=root,
        accel=accel,
        machine_type=machine_type,
        max_age=max_age,
        history=history,
        now=now,
    )
    return render_html(root, data, secs, now), data, secs


__all__ = [
    "DEFAULT_HISTORY",
    "HOW_TO_READ",
    "TABLE_ROWS",
    "Section",
    "build_report",
    "png",
    "render_html",
    "sections",
]
