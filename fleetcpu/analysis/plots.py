"""The figures of the notebook and of ``fleetcpu report``, drawn from the analysis tables.

Figures are built with ``matplotlib.figure.Figure``, not pyplot: no global
state, nothing shown by surprise, safe in a CLI process. Each figure keeps
to what differs: a heat map of 10,000 hosts by 150 features is a green
wall, so hosts with identical rows are folded into one labelled row and the
columns every host shares are counted in the title instead of drawn. Sizes
are therefore bounded by the fleet's variety, not its size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_BARS",
    "MAX_COLUMNS",
    "MAX_ROWS",
    "fold_rows",
    "heatmap",
    "message_figure",
    "plot_blockers",
    "plot_coverage",
    "plot_drift",
    "plot_failures",
    "plot_usability",
]

MAX_ROWS = 40
MAX_COLUMNS = 80
MAX_BARS = 25


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def message_figure(text: str) -> Figure:
    """A small figure that says why there is nothing to draw (for notebooks; reports use text)."""
    fig = _figure(6.0, 1.0)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def fold_rows(matrix: pd.DataFrame) -> pd.DataFrame:
    """Identical host rows as one row labelled ``first-host (+n)``, commonest first."""
    if matrix.empty:
        return matrix
    key = matrix.apply(lambda row: row.to_numpy().tobytes(), axis=1)
    groups: dict[bytes, list[str]] = {}
    for host, k in zip(matrix.index, key, strict=True):
        groups.setdefault(k, []).append(str(host))
    ordered = sorted(groups.values(), key=lambda hosts: (-len(hosts), hosts[0]))
    labels = [hosts[0] if len(hosts) == 1 else f"{hosts[0]} (+{len(hosts) - 1})" for hosts in ordered]
    folded = matrix.loc[[hosts[0] for hosts in ordered]]
    folded.index = pd.Index(labels, name=matrix.index.name)
    return folded


def _differing(matrix: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Columns not equal on every row, plus how many were True and False everywhere."""
    everywhere = matrix.all(axis=0)
    nowhere = ~matrix.any(axis=0)
    return matrix.loc[:, ~(everywhere | nowhere)], int(everywhere.sum()), int(nowhere.sum())


def heatmap(matrix: pd.DataFrame, title: str, what: str) -> Figure:
    """Hosts (folded) x the ``what`` that differ between them; dark is offered/usable."""
    shown, common, absent = _differing(matrix)
    folded = fold_rows(shown)
    more_rows = max(0, len(folded) - MAX_ROWS)
    folded = folded.iloc[:MAX_ROWS, :MAX_COLUMNS]
    more_cols = max(0, shown.shape[1] - MAX_COLUMNS)
    notes = [f"{common} {what} on every host not drawn"]
    if absent:
        notes.append(f"{absent} on none")
    if more_rows or more_cols:
        notes.append(f"{more_rows} more host groups and {more_cols} more {what} cut")
    fig = _figure(max(6.0, 0.14 * folded.shape[1] + 2.5), max(2.0, 0.28 * len(folded) + 1.6))
    ax = fig.add_subplot()
    if folded.shape[1] == 0:
        ax.axis("off")
        ax.text(0.5, 0.5, f"every host has the same {what}", ha="center", va="center")
    else:
        ax.imshow(
            folded.to_numpy(dtype=float),
            aspect="auto",
            cmap="Greens",
            vmin=0,
            vmax=1.25,
            interpolation="nearest",
        )
        ax.set_yticks(range(len(folded.index)), labels=[str(i) for i in folded.index], fontsize=7)
        ax.set_xticks(
            range(folded.shape[1]), labels=[str(c) for c in folded.columns], rotation=90, fontsize=6
        )
    ax.set_title(f"{title}\n({'; '.join(notes)})", fontsize=9)
    return fig


def plot_coverage(matrix: pd.DataFrame, title: str = "features offered") -> Figure:
    """Feature coverage: a white cell is a feature that host cannot give a guest."""
    return heatmap(matrix, title, "features")


def plot_usability(matrix: pd.DataFrame, title: str = "CPU models usable") -> Figure:
    """Model usability: a white cell is a model that host's QEMU refuses (or does not know)."""
    return heatmap(matrix, title, "models")


def plot_blockers(features: pd.DataFrame, groups: pd.DataFrame, title: str = "") -> Figure:
    """Left: the pool's lost features by how many hosts block each. Right: the gain per group."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11.0, max(2.5, 0.22 * min(MAX_BARS, max(len(features), len(groups), 1)) + 1.5))
    left, right = fig.subplots(1, 2)
    by_hosts = features[features["n_hosts"] > 0] if not features.empty else features
    top = by_hosts.sort_values(["n_hosts", "feature"]).head(MAX_BARS)
    policy = len(features) - len(by_hosts)
    if top.empty:
        left.axis("off")
        left.text(
            0.5,
            0.5,
            "no feature is blocked by a host" + (f" ({policy} left out by policy)" if policy else ""),
            ha="center",
            va="center",
            fontsize=8,
        )
    else:
        left.barh(range(len(top)), top["n_hosts"], color="tab:red")
        left.set_yticks(
            range(len(top)),
            labels=[f"{f} ({r})" for f, r in zip(top["feature"], top["reason"], strict=True)],
            fontsize=7,
        )
        left.invert_yaxis()
        left.set_xlabel("hosts blocking it")
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        more = len(by_hosts) - len(top)
        left.set_title(
            "features hosts take from the pool (fewest blockers first)"
            + (f"\n{more} more not drawn" if more > 0 else "")
            + (f"; {policy} left out by policy, not hosts" if policy else ""),
            fontsize=9,
        )
    gains = groups[groups["n_features"] > 0].head(MAX_BARS) if not groups.empty else groups
    if gains.empty:
        right.axis("off")
        right.text(
            0.5,
            0.5,
            "removing no single group of hosts gains a feature",
            ha="center",
            va="center",
            fontsize=8,
        )
    else:
        labels = [
            f"{g}: {h[0]}" + (f" (+{n - 1})" if n > 1 else "")
            for g, h, n in zip(gains["group"], gains["hosts"], gains["n_hosts"], strict=True)
        ]
        right.barh(range(len(gains)), gains["n_features"], color="tab:blue")
        right.set_yticks(range(len(gains)), labels=labels, fontsize=7)
        right.invert_yaxis()
        right.set_xlabel("features gained without the group")
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_title("what the pool gains without each group of identical hosts", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _change_text(row: pd.Series) -> str:
    parts = [f"-{f}" for f in row["features_removed"][:4]]
    parts += [f"+{f}" for f in row["features_added"][:4]]
    extra = len(row["features_removed"]) + len(row["features_added"]) - len(parts)
    if extra > 0:
        parts.append(f"({extra} more)")
    facts = [f"{c} {row.get(f'{c}_before')}->{row.get(c)}" for c in row["changed"] if c != "machine_type"]
    return " ".join(parts + facts)


def plot_drift(frame: pd.DataFrame, title: str = "what changed on each host") -> Figure:
    """Drift timeline: a row per host, a marker per change, red when features were lost."""
    hosts = sorted(frame["host"].unique()) if not frame.empty else []
    shown = hosts[:MAX_ROWS]
    fig = _figure(11.0, max(2.0, 0.45 * len(shown) + 1.4))
    ax = fig.add_subplot()
    if not shown:
        ax.axis("off")
        ax.text(0.5, 0.5, "no host changed between its successful runs", ha="center", va="center")
        ax.set_title(title, fontsize=9)
        return fig
    position = {h: i for i, h in enumerate(shown)}
    data = frame[frame["host"].isin(position)]
    lost = data["features_removed"].map(len) > 0
    gained = (data["features_added"].map(len) > 0) & ~lost
    facts = ~(lost | gained)
    # The grey line is the window the change happened in: from the last record before it.
    ax.hlines(
        data["host"].map(position),
        data["previous_at"],
        data["collected_at"],
        color="lightgray",
        linewidth=2,
        zorder=1,
    )
    for mask, marker, color, label in (
        (lost, "v", "tab:red", "features lost"),
        (gained, "^", "tab:green", "features gained"),
        (facts, "o", "tab:gray", "facts only"),
    ):
        part = data[mask]
        if not part.empty:
            ax.scatter(
                part["collected_at"],
                part["host"].map(position),
                marker=marker,
                s=60,
                color=color,
                label=label,
                zorder=3,
            )
    for _, row in data.iterrows():
        ax.annotate(
            _change_text(row),
            (row["collected_at"], position[row["host"]]),
            xytext=(6, 4),
            textcoords="offset points",
            fontsize=6,
        )
    ax.set_yticks(range(len(shown)), labels=shown, fontsize=7)
    ax.set_ylim(-0.7, len(shown) - 0.3)
    first, last = data["previous_at"].min(), data["collected_at"].max()
    margin = max((last - first) * 0.05, pd.Timedelta(hours=1))
    ax.set_xlim(first - margin, last + margin * 4)  # room on the right for the last label
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    more = f" ({len(hosts) - len(shown)} more hosts not drawn)" if len(hosts) > len(shown) else ""
    ax.set_title(title + more, fontsize=9)
    fig.autofmt_xdate()
    return fig


def plot_failures(frame: pd.DataFrame, title: str = "failed hosts per run") -> Figure:
    """Failed hosts per run, stacked by the stage that failed."""
    fig = _figure(8.0, 3.0)
    ax = fig.add_subplot()
    if frame.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "no failed hosts", ha="center", va="center")
        return fig
    pivot = frame.pivot_table(index="run_id", columns="stage", values="hosts", aggfunc="sum", fill_value=0)
    pivot.plot(kind="bar", stacked=True, ax=ax, width=0.8)
    ax.set_xticks(
        range(len(pivot.index)),
        labels=[str(r)[:15] for r in pivot.index],
        rotation=45,
        fontsize=6,
        ha="right",
    )
    ax.set_ylabel("failed hosts")
    ax.set_title(title, fontsize=9)
    return fig
