#!/usr/bin/env python3
"""Render docs/oracle.md from the JSON results tests/test_oracle.py writes (tests/oracle/gen.py).

    pytest tests/test_oracle.py        # writes <pytest basetemp>/oracle-results.json
    python scripts/gen_oracle_doc.py <that file> -o docs/oracle.md

A thin launcher so the renderer runs from a checkout without installing the
test suite: it imports only the stdlib renderer, never pytest or fleetcpu.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.oracle.gen import main  # after the sys.path line: needs the checkout importable

if __name__ == "__main__":
    raise SystemExit(main())
