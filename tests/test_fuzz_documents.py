"""A fuzz target over mutated golden probe documents (issue 17, item 4).

Every CI run decodes ``CASES`` mutated documents (fixed seed, so a failure
replays) through ``import``'s reader and collect's decode path
(``tests/support/docfuzz.py``), within ``BOUND_S``: each must be a document or a
clean ``ProbeDocumentError`` (a failure row, or a one-line exit 3), never a
traceback. A sample then goes through the real ``fleetcpu import`` into a
real store: exit 0 or 3, and on 3 the store is exactly as it was. The long
run (100,000 cases, outside CI) is ``benchmarks/fuzz_documents.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

from .conftest import invoke
from .support import docfuzz

CASES = 5_000
SEED = 17
BOUND_S = 60.0
#: The operators the issue names, each by the function that applies it.
NAMED_OPERATORS = {
    "type_swap",
    "huge_int",
    "negative_int",
    "deep_nesting",
    "long_string",
    "odd_name",
    "missing_key",
    "extra_key",
    "duplicate_key",
    "invalid_utf8",
}


def test_the_operators_are_the_named_ones() -> None:
    assert set(docfuzz.OPERATORS) == NAMED_OPERATORS


def test_mutated_documents_are_a_document_or_a_clean_refusal(tmp_path: Path) -> None:
    started = time.monotonic()
    tally = docfuzz.run(CASES, tmp_path / "case.json", SEED)
    elapsed = time.monotonic() - started
    assert tally.total == CASES
    assert tally.tracebacks == [], (
        f"{len(tally.tracebacks)} of {CASES} cases gave a traceback; the first:\n" + tally.tracebacks[0]
    )
    assert elapsed <= BOUND_S, f"{CASES} cases took {elapsed:.1f}s (bound {BOUND_S:.0f}s)"
    # Both outcomes happen, and every operator was exercised often.
    assert tally.accepted > CASES // 20 and tally.refused > CASES // 2, tally
    for op in NAMED_OPERATORS:
        assert sum(tally.by_operator[op]) >= CASES // 20, (op, tally.by_operator[op])
    for op in ("deep_nesting", "invalid_utf8"):
        assert tally.by_operator[op][0] == 0, f"{op}: a mutated document was accepted"


def _listing(store: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(store)), p.stat().st_size) for p in store.rglob("*"))


def test_import_of_mutated_documents_is_exit_0_or_3_and_3_changes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    good = tmp_path / "good.json"
    good.write_bytes(docfuzz.GOLDENS[0].read_bytes())
    assert invoke("import", str(good), "--store", str(store)).returncode == 0
    picked: dict[bool, list[docfuzz.Case]] = {True: [], False: []}
    for case in docfuzz.cases(400, SEED + 1):
        accepted, failure = docfuzz.judge(case, tmp_path / "probe.json")
        assert failure is None, failure
        if len(picked[accepted]) < 4:
            picked[accepted].append(case)
    files = []
    for case in picked[False] + picked[True]:
        path = tmp_path / f"case-{case.index}.json"
        path.write_bytes(case.data)
        files.append(path)
        before = _listing(store)
        res = invoke("import", str(path), "--host", f"h{case.index}", "--store", str(store))
        assert res.returncode in (0, 3), (case.operators, res.stderr)
        if res.returncode == 3:
            assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"error: {path}: "), res.stderr
            assert _listing(store) == before, f"exit 3 changed the store ({case.operators})"
        else:
            assert len(_listing(store)) > len(before)
    # Several files at once, one of them refused: all or nothing.
    before = _listing(store)
    res = invoke("import", *map(str, files), "--host", "batch", "--store", str(store))
    assert res.returncode == 3, res.stdout + res.stderr
    assert _listing(store) == before
