"""Every JSON contract fleetcpu emits has a committed JSON Schema file, and the files are valid.

``blockers`` and ``check`` keep their schemas as Python data next to the code
that emits them; the files in ``fleetcpu/schemas/`` are what external
consumers read, so they must say exactly the same thing.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from fleetcpu.explain.printout import BLOCKERS_JSON_SCHEMA, CHECK_JSON_SCHEMA

from .conftest import REPO

SCHEMAS = REPO / "fleetcpu" / "schemas"


@pytest.mark.parametrize(
    "name",
    [
        "probe-1.json",
        "baseline-1.json",
        "verify-1.json",
        "verify-report-1.json",
        "blockers-1.json",
        "check-1.json",
        "status-1.json",
    ],
)
def test_schema_file_is_valid(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / name).read_text()))


@pytest.mark.parametrize(
    ("name", "data"), [("blockers-1.json", BLOCKERS_JSON_SCHEMA), ("check-1.json", CHECK_JSON_SCHEMA)]
)
def test_python_schemas_equal_their_files(name: str, data: object) -> None:
    assert json.loads((SCHEMAS / name).read_text()) == data, (
        f"fleetcpu/schemas/{name} is stale: regenerate it from fleetcpu.explain.printout"
    )
