"""The vocabulary: every spelling of a word is its value, and the schemas spell each set as it does.

The members are ``(str, Enum)``: Python 3.11 formats such a member as
``Accel.KVM`` where 3.9 gives ``kvm``, and no Python 3.9 runs here to catch a
message or a command line that differs between the two, so each way a word
reaches text is pinned to its value. The JSON Schemas are static files read
by consumers, so instead of being generated they are held to the classes.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from fleetcpu import vocabulary
from fleetcpu.vocabulary import (
    MIXED,
    AbiLevel,
    Accel,
    AccelRequest,
    DevKvm,
    KvmNested,
    Outcome,
    Register,
    Stage,
    State,
    Status,
    Word,
    now_rfc3339,
    rfc3339,
)

from .conftest import REPO

SCHEMAS = REPO / "fleetcpu" / "schemas"

#: Every closed set the vocabulary defines.
SETS: tuple[type[Word], ...] = (
    Accel,
    AccelRequest,
    Status,
    Stage,
    Outcome,
    State,
    KvmNested,
    DevKvm,
    Register,
    AbiLevel,
)
MEMBERS = [m for cls in SETS for m in cls]


def test_every_set_is_listed_here() -> None:
    """A set added to the module and not here would escape the tests below."""
    defined = {
        v for v in vars(vocabulary).values() if isinstance(v, type) and issubclass(v, Word) and v is not Word
    }
    assert defined == set(SETS)


@pytest.mark.parametrize("member", MEMBERS, ids=repr)
def test_every_spelling_of_a_word_is_its_value(member: Word) -> None:
    value = member.value
    assert type(value) is str
    assert str(member) == value
    assert f"{member}" == value
    assert format(member, "") == value
    assert "%s" % member == value  # noqa: UP031 - the %-spelling is what is tested
    assert "{}".format(member) == value  # noqa: UP032 - str.format, as f-strings are tested above
    assert f"{member:>20}" == f"{value:>20}"
    assert json.dumps(member) == json.dumps(value)
    assert json.dumps({member: [member]}) == json.dumps({value: [value]})
    assert json.dumps({member: [member]}, indent=1) == json.dumps({value: [value]}, indent=1)
    assert member == value and hash(member) == hash(value)
    assert type(member)(value) is member


def test_spellings_are_plain_strings() -> None:
    """What the spellings return is a ``str``, not a member that would format itself later."""
    for text in (str(Accel.KVM), f"{Accel.KVM}", format(Accel.KVM, ""), Accel.values()[0]):
        assert type(text) is str


def test_values_are_plain_strings_in_definition_order() -> None:
    assert Accel.values() == ("kvm", "tcg")
    assert AccelRequest.values() == ("auto", "kvm", "tcg")
    assert Register.values() == ("eax", "ebx", "ecx", "edx")
    assert all(type(v) is str for cls in SETS for v in cls.values())


def test_members_are_stored_as_their_values() -> None:
    """A member reaching a Parquet column is its value (no object column, no repr)."""
    column = pa.array([Accel.KVM, State.TCG_ONLY, None])
    assert column.type == pa.string()
    assert column.to_pylist() == ["kvm", "tcg-only", None]


def test_a_word_outside_its_set_is_refused() -> None:
    with pytest.raises(ValueError, match="'xen' is not a valid Accel"):
        Accel("xen")


# ------------------------------------------------------------------- times


def test_rfc3339_is_utc_to_the_millisecond() -> None:
    moment = datetime(2026, 11, 26, 10, 13, 36, 578999, tzinfo=UTC)
    assert rfc3339(moment) == "2026-11-26T10:13:36.578Z"
    assert rfc3339(moment.replace(tzinfo=None)) == "2026-11-26T10:13:36.578Z"  # naive is UTC
    assert rfc3339(moment.astimezone(timezone(timedelta(hours=-5)))) == "2026-11-26T10:13:36.578Z"


def test_now_rfc3339_is_now_in_the_same_spelling() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    text = now_rfc3339()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    assert before <= datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) <= after


# ----------------------------------------------------------------- schemas

#: Every enum list of the schemas that spells a vocabulary set: (file, JSON pointer, the list).
SPELT: list[tuple[str, str, list[Any]]] = [
    ("baseline-1.json", "/properties/accel/enum", [*Accel.values()]),
    ("baseline-1.json", "/properties/abi_level/enum", [*AbiLevel.values(), None]),
    ("baseline-1.json", "/properties/hosts/items/properties/accel/enum", [*Accel.values()]),
    ("blockers-1.json", "/properties/accel/enum", [*Accel.values()]),
    ("check-1.json", "/properties/accel/enum", [*Accel.values()]),
    ("probe-1.json", "/properties/status/enum", [*Status.values()]),
    ("probe-1.json", "/properties/accel/enum", [*Accel.values(), MIXED, None]),
    ("probe-1.json", "/$defs/host/properties/kvm_nested/enum", [*KvmNested.values()]),
    ("probe-1.json", "/$defs/host/properties/dev_kvm/enum", [*DevKvm.values()]),
    ("probe-1.json", "/$defs/feature_word/properties/register/enum", [*Register.values()]),
    ("probe-1.json", "/$defs/machine_probe/properties/accel/enum", [*Accel.values()]),
    ("probe-1.json", "/$defs/attempt/properties/outcome/enum", [*Outcome.values()]),
    ("status-1.json", "/$defs/state/enum", [*State.values()]),
    ("status-1.json", "/$defs/adopted/properties/accel/enum", [*Accel.values()]),
    ("status-1.json", "/$defs/adopted/properties/abi_level/enum", [*AbiLevel.values(), None]),
    ("verify-1.json", "/properties/status/enum", [*Status.values()]),
    ("verify-1.json", "/properties/accel/enum", [*Accel.values()]),
    ("verify-1.json", "/properties/accel_used/enum", [*Accel.values(), None]),
    ("verify-1.json", "/$defs/opt_words/items/properties/register/enum", [*Register.values()]),
    ("verify-report-1.json", "/properties/accel/enum", [*Accel.values()]),
]


def _enums(value: Any, pointer: str = "") -> Iterator[tuple[str, list[Any]]]:
    """(JSON pointer, list) of every ``enum`` in a schema."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "enum":
                yield f"{pointer}/enum", item
            else:
                yield from _enums(item, f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _enums(item, f"{pointer}/{i}")


def _schema_enums() -> dict[tuple[str, str], list[Any]]:
    return {
        (path.name, pointer): values
        for path in sorted(SCHEMAS.glob("*.json"))
        for pointer, values in _enums(json.loads(path.read_text()))
    }


def spells_a_set(values: list[Any]) -> bool:
    """Two or more of the list's words are all words of one set: the list spells (part of) it."""
    words = {v for v in values if isinstance(v, str)}
    return len(words) >= 2 and any(words <= set(cls.values()) for cls in SETS)


@pytest.mark.parametrize(("name", "pointer", "expected"), SPELT, ids=[f"{n}{p}" for n, p, _ in SPELT])
def test_schema_enums_are_the_vocabulary(name: str, pointer: str, expected: list[Any]) -> None:
    found = _schema_enums().get((name, pointer))
    assert found is not None, f"{name} has no enum at {pointer}"
    assert found == expected, f"fleetcpu/schemas/{name}{pointer} differs from the vocabulary"


def test_every_schema_enum_of_a_set_is_held_to_it() -> None:
    """A new schema list of accelerators (or states...) must join ``SPELT``, not drift on its own."""
    unheld = sorted(
        key
        for key, values in _schema_enums().items()
        if spells_a_set(values) and key not in {(n, p) for n, p, _ in SPELT}
    )
    assert not unheld, f"schema enums spelling a vocabulary set but not held to it: {unheld}"


def test_spells_a_set_tells_a_set_from_other_lists() -> None:
    """The completeness check above would pass vacuously if this could not say yes."""
    assert spells_a_set(["kvm", "tcg", None])
    assert spells_a_set(["tcg-only", "stale"])
    assert not spells_a_set(["kvm"])
    assert not spells_a_set(["stale", "probed-under-tcg"])


# ----------------------------------------------------- the package uses it

PACKAGE = REPO / "fleetcpu"


def _literal_words(node: ast.AST) -> list[str] | None:
    """The strings of a tuple, list, set or dict-keys literal made only of string constants (and None)."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items: list[ast.expr | None] = list(node.elts)
    elif isinstance(node, ast.Dict):
        items = list(node.keys)
    else:
        return None
    items = [i for i in items if not (isinstance(i, ast.Constant) and i.value is None)]
    words = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    return words if len(words) == len(items) else None


def spelt_lists(source: str) -> list[tuple[int, list[str]]]:
    """(line, words) of every literal list in ``source`` that spells part of a vocabulary set."""
    return [
        (node.lineno, words)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.expr)
        and (words := _literal_words(node)) is not None
        and spells_a_set(list(words))
    ]


def test_no_list_of_a_vocabulary_set_is_written_outside_it() -> None:
    """Accelerators, stages, outcomes, states, registers: named from the vocabulary, never re-listed."""
    found = [
        f"{path.relative_to(REPO)}:{line}: {words}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "vocabulary.py" or path.parent != PACKAGE
        for line, words in spelt_lists(path.read_text())
    ]
    assert not found, "lists of vocabulary words outside fleetcpu/vocabulary.py:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'ACCELS = ("kvm", "tcg")',
        'choice = click.Choice(["auto", "kvm", "tcg"])',
        'REGS = frozenset({"eax", "ebx", "ecx", "edx"})',
        'last_ok = {"kvm": 1, "tcg": 2}',
        'if stage in ("output", "timeout", "upload"): pass',
        'schema = {"enum": ["compliant", "stale", None]}',
    ],
)
def test_the_scan_finds_a_list_written_again(source: str) -> None:
    assert spelt_lists(source), source


@pytest.mark.parametrize(
    "source",
    [
        "ACCELS = Accel.values()",
        'x = ("kvm",)',
        'formats = ("qemu", "json", "readconfig")',
        'flags = ("on", "true", "yes", "")',
        'pair = ("kvm", 1)',
    ],
)
def test_the_scan_leaves_other_lists_alone(source: str) -> None:
    assert not spelt_lists(source), source
