"""The long fuzz run over mutated golden probe documents, outside CI (issue 17, item 4).

    python benchmarks/fuzz_documents.py                   # 100,000 cases, seed 17
    python benchmarks/fuzz_documents.py --cases 20000 --seed 3

The same cases and verdicts as ``tests/test_fuzz_documents.py`` (which runs
5,000 of them in CI): ``import``'s reader and collect's decode path must give
a document or a clean ``ProbeDocumentError`` for every case. Prints the
count of accepted, refused and traceback cases, per operator too, and the
first tracebacks; exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import docfuzz  # noqa: E402 - after the path is set


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--show", type=int, default=3, help="tracebacks to print")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fleetcpu-fuzz-") as scratch:
        tally = docfuzz.run(args.cases, Path(scratch) / "case.json", args.seed)
    elapsed = time.monotonic() - started
    print(
        f"{tally.total} cases (seed {args.seed}) in {elapsed:.0f}s: accepted {tally.accepted}, "
        f"refused {tally.refused}, tracebacks {len(tally.tracebacks)}"
    )
    for op, (ok, refused) in sorted(tally.by_operator.items()):
        print(f"  {op:14} accepted {ok:6}  refused {refused:6}")
    for text in tally.tracebacks[: args.show]:
        print(text)
    return 1 if tally.tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
