#!/usr/bin/env python3
"""Render ``docs/oracle.md`` from the JSON results ``tests/test_oracle.py`` writes.

The document is never written by hand: the tests compute every row, write
them as JSON (``oracle-results.json`` under pytest's base temp directory),
and this renderer turns that file into Markdown. A test renders the results
of the current run and compares them with the committed ``docs/oracle.md``,
so the document cannot go stale. Stdlib only, and importing nothing of the
test suite or of fleetcpu: the tests depend on this script, never the reverse.

    pytest tests/test_oracle.py        # writes <pytest basetemp>/oracle-results.json
    python scripts/gen_oracle_doc.py RESULTS.json -o docs/oracle.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

SCHEMA = "fleetcpu.oracle-results/1"
#: More names than this in one cell are counted, not listed (the 70 vmx-* rows).
LISTED = 8


def _names(features: Sequence[str]) -> str:
    if len(features) > LISTED:
        return f"{len(features)} features"
    return ", ".join(f"`{f}`" for f in features)


def _cell(diffs: Iterable[Mapping[str, Any]]) -> str:
    """Differences of one side, grouped by their explanation, one clause per group."""
    groups: dict[str, list[str]] = {}
    for d in diffs:
        if d["verdict"] == "known":
            key = f"known: {d['known']}"
        elif d["verdict"] == "policy":
            key = "policy: " + d["why"].split(":", 1)[0]
        elif d["verdict"] == "larger":
            key = "offered by both hosts"
        else:
            key = f"{d['verdict']}: {d['why']}"
        groups.setdefault(key, []).append(d["feature"])
    return "; ".join(f"{_names(sorted(names))} ({key})" for key, names in groups.items()) or "none"


def _pairs(results: Mapping[str, Any]) -> list[str]:
    virsh = results.get("virsh_version") or "virsh"
    out = [
        "| pair (libvirt file) | hosts (`x86_64-cpuid-<CPU>`) | libvirt model | our model "
        "| features equal | we have more (still offered by both hosts) "
        f"| we have fewer (each explained) | verdict | virsh {virsh} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in results["pairs"]:
        ours = p["our_model"] + (f" ({p['our_model_note']})" if p["our_model_note"] else "")
        more = _cell(d for d in p["differences"] if d["side"] == "ours-only")
        fewer = _cell(d for d in p["differences"] if d["side"] == "libvirt-only")
        v = p.get("virsh")
        opinion = "not run" if v is None else f"{v['verdict']}: {v['detail']}"
        out.append(
            f"| {p['pair']} | {p['hosts'][0]}, {p['hosts'][1]} | {p['libvirt_model']} | {ours} "
            f"| {p['equal']} of {p['ours_total']} ours / {p['libvirt_total']} libvirt's "
            f"| {more} | {fewer} | **{p['status']}** | {opinion} |"
        )
    return out


def _known(rows: Sequence[Mapping[str, Any]], where: str) -> list[str]:
    out = [f"| known difference | side | reason | {where} |", "|---|---|---|---|"]
    for k in rows:
        out.append(f"| {k['label']} | {k['side']} | {k['reason']} | {', '.join(k['used_by'])} |")
    return out


def _figures(pairs: Sequence[Mapping[str, Any]]) -> list[str]:
    statuses = [p["status"] for p in pairs]
    larger = sum("larger" in s for s in statuses)
    smaller = sum("smaller" in s for s in statuses)
    agree = sum(1 for p in pairs if p.get("virsh") and p["virsh"]["verdict"] == "agrees")
    return [
        f"- {len(pairs)} pairs: **{statuses.count('equal')} equal** to libvirt modulo the known "
        f"differences, **{larger} larger** (features libvirt drops that both hosts offer), "
        f"**{smaller} smaller** (each explained), {statuses.count('FAILS')} failing.",
        f"- virsh agrees with libvirt 11.3 on {agree} of {len(pairs)} pairs; the rest say "
        '"oracles disagree".',
    ]


def _virsh_answers(pairs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What virsh said, verbatim in libvirt's names, beside libvirt 11.3's expected model."""
    out = [
        "| pair | libvirt 11.3 expects | virsh says (model +required -disabled) | verdict |",
        "|---|---|---|---|",
    ]
    for p in pairs:
        v = p.get("virsh")
        if v is None:
            out.append(f"| {p['pair']} | {p['libvirt_model']} | not run | |")
            continue
        out.append(f"| {p['pair']} | {p['libvirt_model']} | `{v['answer']}` | {v['verdict']} |")
    return out


def _virsh_hosts(pairs: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, Mapping[str, Any]] = {}
    for p in pairs:
        for h in (p.get("virsh") or {}).get("hosts", ()):
            seen.setdefault(h["cpu"], h)
    out = [
        "| host | model written for virsh | names virsh's cpu_map lacks (dropped) "
        "| virsh reads it back as the host |",
        "|---|---|---|---|",
    ]
    for cpu, h in sorted(seen.items()):
        dropped = h["dropped"]
        vmx = [d for d in dropped if d.startswith("vmx-")]
        rest = [d for d in dropped if not d.startswith("vmx-")]
        text = ", ".join(([f"{len(vmx)} vmx-*"] if vmx else []) + rest) or "none"
        back = "yes" if h["faithful"] else "no: " + " ".join(h["readback_diff"])
        out.append(f"| {cpu} | {h['model']} | {text} | {back} |")
    return out


def _usability(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    out = [
        "| libvirt domaincaps file | replay host | accel | models both list | usable agree "
        "(libvirt usable) | blockers agree (names respelt) | disagreements | only we list (why) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        why: dict[str, list[str]] = {}
        for model, label in r["justified"].items():
            why.setdefault(label, []).append(model)
        only = "; ".join(f"{_models(ms)} ({label})" for label, ms in why.items()) or "none"
        blockers = (
            f"{r['blockers_agree']} of {r['blockers_compared']} ({r['blockers_respelt']})"
            if r["blockers_compared"]
            else "not listed by this libvirt"
        )
        out.append(
            f"| {r['file']} ({r['machine']}) | {r['capture']} | {r['accel']} | {r['compared']} "
            f"| {r['usable_agree']} ({r['usable_libvirt']}) | {blockers} "
            f"| {len(r['disagreements'])} | {only} |"
        )
    return out


def _models(names: Sequence[str]) -> str:
    if len(names) > LISTED:
        return f"{len(names)} models"
    return ", ".join(names)


def render(results: Mapping[str, Any]) -> str:
    """The whole document, deterministic for the same results."""
    if results.get("schema") != SCHEMA:
        raise ValueError(f"not {SCHEMA} results: {results.get('schema')!r}")
    lines = [
        "# fleetcpu judged against libvirt",
        "",
        "<!-- Generated by scripts/gen_oracle_doc.py from the results of tests/test_oracle.py."
        " Do not edit: a test compares this file with the generator's output. -->",
        "",
        "libvirt ships its expected CPU baselines for real host pairs with its tests "
        f"({results['libvirt_data']}). Each pair below is computed twice: by libvirt (its "
        "answer, a model plus required/disabled features, expanded through its `cpu_map` and "
        "spelt as QEMU spells features) and by fleetcpu (`compute_baseline` on members built "
        "from the same two hosts' QEMU captures, KVM, default policy). The test fails on any "
        "feature we enable that either host lacks (by our reading of the capture or by "
        "libvirt's), on any feature libvirt keeps that both hosts offer and we drop without "
        "a policy reason, and on any known difference that is not needed or does not hold.",
        "",
        *_figures(results["pairs"]),
        "",
        "## Host pairs",
        "",
        *_pairs(results),
        "",
        "Known differences (one table in `tests/test_oracle.py`; each row is checked against "
        "the data for every feature it covers, and a row no pair needs fails the test):",
        "",
        *_known(results["known"], "pairs"),
        "",
        f"## The second opinion: virsh {results.get('virsh_version') or ''}".rstrip(),
        "",
        "`virsh -c test:///default cpu-baseline` (Debian 12's libvirt, no daemon) on the same "
        "two hosts, each written as a host-CPU definition for virsh's own, older `cpu_map`. "
        "It is compared with libvirt 11.3's expected answer on the features virsh can name; "
        'where it errs or differs, the row says "oracles disagree" instead of failing. '
        "Beyond libvirt's eight pairs, `python -m tests.oracle.sweep` asks virsh about every "
        "same-vendor pair of captured hosts and lists where it and fleetcpu part (about 20 s, "
        "so not part of the suite).",
        "",
        *_virsh_answers(results["pairs"]),
        "",
        "How each host was written for virsh:",
        "",
        *_virsh_hosts(results["pairs"]),
        "",
        "## Per-model usability",
        "",
        "libvirt's `domaincapsdata` for the three `caps_*.replies` conversations against the "
        "probe's reading of `unavailable-features` in the same replies (blockers translated "
        "from libvirt spellings through `x86_features.xml`).",
        "",
        *_usability(results["usability"]),
        "",
        *_known(results["usability_known"], "files"),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="oracle-results.json written by tests/test_oracle.py")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = render(json.loads(args.results.read_text()))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
