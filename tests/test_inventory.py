"""The inventory parser: Ansible INI compatibility, precedence, pools, and every refusal.

An inventory mistake turns into a CPU model some host cannot run, found only
when a live migration is refused, so each malformed case below checks the
exact line the error points at, not just that something failed.
"""

from __future__ import annotations

import dataclasses
import textwrap
import time
from pathlib import Path

import pytest

from fleetcpu.errors import BadInputError, InventoryError
from fleetcpu.fleet import inventory as inventory_module
from fleetcpu.fleet.inventory import (
    DEFAULT_POOL,
    MAX_EXPANSION,
    HostSpec,
    Inventory,
    load_inventory,
    parse_inventory,
)

REPO = Path(__file__).resolve().parent.parent
PATH = "hosts.txt"


def parse(text: str, *, strict: bool = False) -> Inventory:
    return parse_inventory(textwrap.dedent(text), PATH, strict=strict)


def only(text: str) -> HostSpec:
    inv = parse(text)
    assert len(inv.hosts) == 1, inv.hosts
    return inv.hosts[0]


def by_name(inv: Inventory) -> dict[str, HostSpec]:
    return {h.name: h for h in inv.hosts}


def names(text: str) -> list[str]:
    return [h.name for h in parse(text).hosts]


def fails(text: str, line: int, *fragments: str, strict: bool = False) -> InventoryError:
    """Parse, expect an InventoryError at ``line``, and check the message names the problem."""
    with pytest.raises(InventoryError) as info:
        parse(text, strict=strict)
    err = info.value
    assert err.path == PATH
    assert err.line == line, str(err)
    prefix = f"{PATH}:{line}: " if line else f"{PATH}: "
    assert str(err).startswith(prefix), str(err)
    for fragment in fragments:
        assert fragment in err.problem, (fragment, str(err))
    return err


# --------------------------------------------------------------- host lines


def test_bare_name_gets_every_default() -> None:
    host = only("kvm01\n")
    assert host == HostSpec(
        name="kvm01",
        address="kvm01",
        port=None,
        user=None,
        pool=DEFAULT_POOL,
        machine_types=(),
        qemu=None,
        python=None,
        accel="auto",
        transport="ssh",
        groups=(),
        source="hosts.txt:1",
    )
    assert DEFAULT_POOL == "default"


def test_user_and_port_are_not_part_of_the_identity() -> None:
    host = only("root@kvm01:2222\n")
    assert (host.name, host.address, host.user, host.port) == ("kvm01", "kvm01", "root", 2222)


@pytest.mark.parametrize(
    ("token", "name", "user", "port"),
    [
        ("kvm01.example.com", "kvm01.example.com", None, None),
        ("kvm01:22", "kvm01", None, 22),
        ("admin@kvm01", "kvm01", "admin", None),
        ("10.0.0.5:2200", "10.0.0.5", None, 2200),
        ("kvm_01:0022", "kvm_01", None, 22),
    ],
)
def test_host_token_forms(token: str, name: str, user: str | None, port: int | None) -> None:
    host = only(token + "\n")
    assert (host.name, host.address, host.user, host.port) == (name, name, user, port)


def test_all_fleetcpu_keys_on_a_host_line() -> None:
    host = only(
        "kvm01 pool=p1 machine_types=pc-q35-7.2,pc-i440fx-7.2 qemu=/opt/qemu/bin/qemu "
        "python=/usr/bin/python3.11 accel=tcg transport=ssh\n"
    )
    assert host.pool == "p1"
    assert host.machine_types == ("pc-q35-7.2", "pc-i440fx-7.2")
    assert host.qemu == "/opt/qemu/bin/qemu"
    assert host.python == "/usr/bin/python3.11"
    assert host.accel == "tcg"
    assert host.transport == "ssh"


def test_ansible_connection_keys() -> None:
    inv = parse(
        """\
        jump ansible_host=203.0.113.7 ansible_port=2201 ansible_user=ops
        old ansible_ssh_host=198.51.100.1 ansible_ssh_port=2202 ansible_ssh_user=legacy
        rhel ansible_python_interpreter=/usr/libexec/platform-python
        localhost ansible_connection=local
        remote ansible_connection=ssh
        """
    )
    hosts = by_name(inv)
    assert (hosts["jump"].address, hosts["jump"].port, hosts["jump"].user) == (
        "203.0.113.7",
        2201,
        "ops",
    )
    assert (hosts["old"].address, hosts["old"].port, hosts["old"].user) == (
        "198.51.100.1",
        2202,
        "legacy",
    )
    assert hosts["rhel"].python == "/usr/libexec/platform-python"
    assert hosts["localhost"].transport == "local"
    assert hosts["remote"].transport == "ssh"
    assert inv.warnings == ()


def test_transport_local_key() -> None:
    assert only("box transport=local\n").transport == "local"


@pytest.mark.parametrize("accel", ["auto", "kvm", "tcg"])
def test_every_accel_value(accel: str) -> None:
    assert only(f"kvm01 accel={accel}\n").accel == accel


def test_quoted_values_as_ansible_allows() -> None:
    inv = parse(
        """\
        a qemu='/opt/my qemu/qemu-system-x86_64'
        b qemu="/opt/other qemu/bin"
        c python="/usr/bin/py\\"3" pool='p'"q"
        "d" qemu=''/x
        e qemu="/opt/has#hash" # a real comment
        """
    )
    hosts = by_name(inv)
    assert hosts["a"].qemu == "/opt/my qemu/qemu-system-x86_64"
    assert hosts["b"].qemu == "/opt/other qemu/bin"
    assert hosts["c"].python == '/usr/bin/py"3'
    assert hosts["c"].pool == "pq"
    assert hosts["d"].qemu == "/x"
    assert hosts["e"].qemu == "/opt/has#hash"


def test_comments_blank_lines_indentation_crlf_and_bom() -> None:
    text = (
        "\ufeff# a comment\r\n"
        "; an ini comment\r\n"
        "\r\n"
        "   kvm01   pool=a   # trailing comment pool=b\r\n"
        "\t; indented comment\r\n"
        "kvm02 qemu=/opt/q#1\r\n"
        "  [grp]  # comment after a header\r\n"
        "   kvm03\r\n"
    )
    inv = parse_inventory(text, PATH)
    hosts = by_name(inv)
    assert list(hosts) == ["kvm01", "kvm02", "kvm03"]
    assert hosts["kvm01"].pool == "a"
    assert hosts["kvm01"].source == "hosts.txt:4"
    assert hosts["kvm02"].qemu == "/opt/q#1"  # '#' inside a token is not a comment
    assert hosts["kvm03"].groups == ("grp",)
    assert hosts["kvm03"].source == "hosts.txt:8"


def test_source_is_where_the_host_was_first_defined() -> None:
    inv = parse(
        """\
        [a]
        kvm01 pool=p
        [b]
        kvm02
        kvm01
        """
    )
    assert by_name(inv)["kvm01"].source == "hosts.txt:2"
    assert by_name(inv)["kvm02"].source == "hosts.txt:4"


# --------------------------------------------------------------- sections


def test_group_sections_and_children() -> None:
    inv = parse(
        """\
        [sky]
        kvm01
        [epyc:hosts]
        kvm02
        [kvm:children]
        sky
        epyc  # comment
        """
    )
    hosts = by_name(inv)
    assert hosts["kvm01"].groups == ("sky",)
    assert hosts["kvm01"].pool == "sky"
    assert hosts["kvm02"].groups == ("epyc",)
    assert hosts["kvm02"].pool == "epyc"


def test_groups_are_direct_and_in_file_order_without_all_or_ungrouped() -> None:
    inv = parse(
        """\
        kvm01
        [zeta]
        kvm01
        [alpha]
        kvm01
        [zeta]
        kvm01
        [all]
        kvm01
        [parent:children]
        alpha
        [zeta:vars]
        pool=p
        """
    )
    assert inv.hosts[0].groups == ("zeta", "alpha")


def test_vars_section_syntax() -> None:
    inv = parse(
        """\
        [g]
        kvm01
        [g:vars]
        qemu = /usr/libexec/qemu-kvm
        python="/usr/bin/python 3"
        ansible_user='deploy'   # who we log in as
        machine_types=pc-q35-7.2 , pc-i440fx-7.2 # newest first
        """
    )
    host = inv.hosts[0]
    assert host.qemu == "/usr/libexec/qemu-kvm"
    assert host.python == "/usr/bin/python 3"
    assert host.user == "deploy"
    assert host.machine_types == ("pc-q35-7.2", "pc-i440fx-7.2")
    # Without whitespace before it, '#' is part of the value, so this accel is invalid.
    fails("[g]\nk\n[g:vars]\naccel=kvm#x\n", 4, "bad accel 'kvm#x'")


def test_vars_line_accepts_a_valid_value_with_hash_when_spaced() -> None:
    inv = parse("[g]\nk\n[g:vars]\naccel=kvm #comment\n")
    assert inv.hosts[0].accel == "kvm"


def test_vars_section_before_hosts_section_is_fine() -> None:
    inv = parse(
        """\
        [prod:vars]
        machine_types=pc-q35-8.2
        [prod]
        kvm01
        """
    )
    assert inv.hosts[0].machine_types == ("pc-q35-8.2",)


def test_children_may_name_a_group_defined_later() -> None:
    inv = parse(
        """\
        [kvm:children]
        prod
        [kvm:vars]
        accel=kvm
        [prod]
        kvm01
        """
    )
    assert inv.hosts[0].accel == "kvm"
    assert inv.hosts[0].pool == "prod"


def test_machine_types_are_deduplicated_in_order() -> None:
    host = only("kvm01 machine_types=b-1,a-1,b-1\n")
    assert host.machine_types == ("b-1", "a-1")


# --------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("kvm[01:03].example.com", ["kvm01.example.com", "kvm02.example.com", "kvm03.example.com"]),
        ("kvm[8:11]", ["kvm8", "kvm9", "kvm10", "kvm11"]),
        ("kvm[008:011]", ["kvm008", "kvm009", "kvm010", "kvm011"]),
        ("kvm[1:20:5]", ["kvm1", "kvm6", "kvm11", "kvm16"]),
        ("kvm[01:10:3]", ["kvm01", "kvm04", "kvm07", "kvm10"]),
        ("db-[a:c]", ["db-a", "db-b", "db-c"]),
        ("db-[a:e:2]", ["db-a", "db-c", "db-e"]),
        ("db-[y:B]", ["db-y", "db-z", "db-A", "db-B"]),
        ("n[:2]", ["n0", "n1", "n2"]),
        ("r[1:2]-n[a:b]", ["r1-na", "r1-nb", "r2-na", "r2-nb"]),
        ("kvm[3:3]", ["kvm3"]),
    ],
)
def test_ranges(pattern: str, expected: list[str]) -> None:
    assert names(pattern + "\n") == expected


def test_range_at_the_start_of_a_line_is_a_host_not_a_header() -> None:
    assert names("[a:c]kvm.example.com\n") == [
        "akvm.example.com",
        "bkvm.example.com",
        "ckvm.example.com",
    ]


def test_range_with_user_port_and_vars_applies_them_to_each_host() -> None:
    inv = parse("root@kvm[1:2]:2222 pool=p\n")
    assert [(h.name, h.user, h.port, h.pool) for h in inv.hosts] == [
        ("kvm1", "root", 2222, "p"),
        ("kvm2", "root", 2222, "p"),
    ]
    assert all(h.source == "hosts.txt:1" for h in inv.hosts)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("kvm[1:]", "no end value"),
        ("kvm[3:1]", "start is after the end"),
        ("kvm[c:a]", "start is after the end"),
        ("kvm[a:1]", "two numbers or two single letters"),
        ("kvm[aa:bb]", "two numbers or two single letters"),
        ("kvm[01:100]", "equal width"),
        ("kvm[1:5:0]", "step must be a positive integer"),
        ("kvm[1:5:x]", "step must be a positive integer"),
        ("kvm[1:5:]", "step must be a positive integer"),
        ("kvm[1]", "expected [start:end]"),
        ("kvm[1:2:3:4]", "expected [start:end]"),
        ("kvm[]", "expected [start:end]"),
        ("kvm[1:2", "unbalanced"),
        ("kvm1:2]", "unbalanced"),
        ("kvm[[1:2]]", "unbalanced"),
        ("kvm[0:99999999]", "more than"),
        ("kvm[0:999][0:9999]", "more than"),
    ],
)
def test_bad_ranges(pattern: str, fragment: str) -> None:
    fails(f"# fleet\nok01\n{pattern}\n", 3, fragment)


def test_expansion_cap_is_checked_per_range_before_building_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inventory_module, "MAX_EXPANSION", 10)
    assert len(names("kvm[0:9]\n")) == 10
    fails("ok\nkvm[0:10]\n", 2, "range [0:10] expands to more than 10 names")
    fails("ok\na[0:4]b[0:4]\n", 2, "host pattern 'a[0:4]b[0:4]' expands to more than 10")


def test_max_expansion_is_generous_enough_for_a_fleet() -> None:
    assert MAX_EXPANSION >= 100_000


# --------------------------------------------------------------- precedence


def test_precedence_host_then_child_group_then_parent_then_all() -> None:
    inv = parse(
        """\
        [all:vars]
        qemu=/from/all
        python=/py/all
        accel=tcg
        machine_types=m-all

        [site:children]
        rack

        [site:vars]
        qemu=/from/site
        python=/py/site
        accel=kvm

        [rack:children]
        prod

        [rack:vars]
        qemu=/from/rack
        python=/py/rack

        [prod]
        kvm01 qemu=/from/host
        kvm02

        [prod:vars]
        qemu=/from/prod
        """
    )
    hosts = by_name(inv)
    assert hosts["kvm01"].qemu == "/from/host"
    assert hosts["kvm02"].qemu == "/from/prod"
    assert hosts["kvm02"].python == "/py/rack"
    assert hosts["kvm02"].accel == "kvm"
    assert hosts["kvm02"].machine_types == ("m-all",)


def test_deeper_path_wins_over_shallow_parent_like_ansible() -> None:
    # 'deep' is both a top-level child of 'top' and under 'mid' (depth 3):
    # its vars must beat 'mid' and 'top' whatever the file order.
    inv = parse(
        """\
        [deep]
        kvm01
        [deep:vars]
        qemu=/deep
        [top:children]
        mid
        deep
        [mid:children]
        deep
        [mid:vars]
        qemu=/mid
        [top:vars]
        qemu=/top
        """
    )
    assert inv.hosts[0].qemu == "/deep"


def test_depth_is_the_longest_path_whatever_the_order_groups_are_met() -> None:
    # 'aaa' sits under z (depth 2) and under a -> b (depth 3). Its depth is 3,
    # so its vars beat b's (depth 2) even though 'aaa' sorts before 'b'.
    inv = parse(
        """\
        [aaa]
        kvm01
        [aaa:vars]
        qemu=/aaa
        [z:children]
        aaa
        [a:children]
        b
        [b:children]
        aaa
        [b:vars]
        qemu=/b
        python=/b
        """
    )
    assert inv.hosts[0].qemu == "/aaa"
    assert inv.hosts[0].python == "/b"


def test_sibling_groups_at_same_depth_merge_in_name_order() -> None:
    inv = parse(
        """\
        [zz]
        kvm01 pool=p
        [aa]
        kvm01
        [zz:vars]
        qemu=/from-zz
        [aa:vars]
        qemu=/from-aa
        python=/py-aa
        """
    )
    assert inv.hosts[0].qemu == "/from-zz"
    assert inv.hosts[0].python == "/py-aa"


def test_aliases_fold_before_precedence() -> None:
    inv = parse(
        """\
        [g]
        kvm01 ansible_python_interpreter=/host/py ansible_connection=local
        kvm02
        [g:vars]
        python=/group/py
        transport=ssh
        """
    )
    hosts = by_name(inv)
    assert (hosts["kvm01"].python, hosts["kvm01"].transport) == ("/host/py", "local")
    assert (hosts["kvm02"].python, hosts["kvm02"].transport) == ("/group/py", "ssh")


def test_ansible_connection_in_group_vars() -> None:
    inv = parse("[local]\nlocalhost\n[local:vars]\nansible_connection=local\n")
    assert inv.hosts[0].transport == "local"
    assert inv.hosts[0].pool == "local"


def test_empty_machine_types_on_a_host_overrides_the_group() -> None:
    inv = parse(
        """\
        [prod]
        kvm01
        kvm02 machine_types=
        [prod:vars]
        machine_types=pc-q35-7.2,pc-i440fx-7.2
        """
    )
    hosts = by_name(inv)
    assert hosts["kvm01"].machine_types == ("pc-q35-7.2", "pc-i440fx-7.2")
    assert hosts["kvm02"].machine_types == ()


def test_ungrouped_vars_apply_only_to_ungrouped_hosts() -> None:
    inv = parse(
        """\
        lone
        [g]
        member
        [ungrouped:vars]
        qemu=/ungrouped
        """
    )
    hosts = by_name(inv)
    assert hosts["lone"].qemu == "/ungrouped"
    assert hosts["member"].qemu is None


# --------------------------------------------------------------- pools


def test_pool_explicit_on_host_beats_group() -> None:
    inv = parse("[prod]\nkvm01 pool=canary\nkvm02\n")
    assert [h.pool for h in inv.hosts] == ["canary", "prod"]


def test_pool_from_group_vars() -> None:
    inv = parse("[rack1]\nkvm01\n[rack1:vars]\npool=prod-sky\n")
    assert inv.hosts[0].pool == "prod-sky"


def test_pool_from_all_vars_beats_group_names() -> None:
    inv = parse("[a]\nkvm01\n[b]\nkvm02\n[all:vars]\npool=everything\n")
    assert [h.pool for h in inv.hosts] == ["everything", "everything"]


def test_pool_is_the_single_direct_group_not_a_parent() -> None:
    inv = parse("[prod]\nkvm01\n[kvm:children]\nprod\n[site:children]\nkvm\n")
    assert inv.hosts[0].pool == "prod"
    assert inv.hosts[0].groups == ("prod",)


def test_two_direct_groups_are_an_error_naming_both() -> None:
    err = fails(
        """\
        [prod-a]
        kvm01
        kvm02
        [prod-b]
        kvm03
        kvm01
        """,
        6,
        "'kvm01'",
        "'prod-a'",
        "'prod-b'",
        "pool=",
    )
    assert err.exit_code == 3


def test_three_direct_groups_are_all_named() -> None:
    fails("[a]\nh\n[b]\nh\n[c]\nh\n", 4, "'a', 'b' and 'c'")


def test_two_groups_with_an_explicit_pool_are_fine() -> None:
    inv = parse("[sky]\nkvm01\n[rhel9]\nkvm01\n[sky:vars]\npool=sky\n")
    assert inv.hosts[0].pool == "sky"
    assert inv.hosts[0].groups == ("sky", "rhel9")


def test_no_group_is_the_default_pool() -> None:
    inv = parse("kvm01\n[all]\nkvm02\n[ungrouped]\nkvm03\n")
    assert [h.pool for h in inv.hosts] == ["default"] * 3


def test_ungrouped_then_grouped_host_takes_the_group() -> None:
    inv = parse("kvm01\n[prod]\nkvm01\n")
    assert inv.hosts[0].pool == "prod"


def test_pools_mapping_keeps_order() -> None:
    inv = parse("[b]\nb1\nb2\n[a]\na1\n[b]\nb3\n")
    pools = inv.pools()
    assert list(pools) == ["b", "a"]
    assert [h.name for h in pools["b"]] == ["b1", "b2", "b3"]
    assert [h.name for h in pools["a"]] == ["a1"]


# --------------------------------------------------------------- duplicates


def test_compatible_duplicates_merge() -> None:
    inv = parse(
        """\
        root@kvm01 pool=p
        [a]
        kvm01:2222 ansible_become=yes
        kvm01 pool=p
        [b]
        kvm01 ansible_become=no qemu=/q
        """
    )
    assert len(inv.hosts) == 1
    host = inv.hosts[0]
    assert (host.user, host.port, host.pool, host.qemu) == ("root", 2222, "p", "/q")
    assert host.groups == ("a", "b")
    assert host.source == "hosts.txt:1"


def test_hosts_are_deduplicated_in_file_order() -> None:
    assert names("c\nb\n[g]\na\nc\nb\n") == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("second", "fragments"),
    [
        ("kvm01 pool=b", ("'kvm01'", "pool='b'", "line 2", "pool='a'")),
        ("kvm01:2222", (":port='2222'", "line 2", "ansible_port='22'")),
        ("admin@kvm01", ("user@='admin'", "ansible_user='root'")),
        ("kvm01 python=/b", ("python='/b'", "ansible_python_interpreter='/a'")),
        ("kvm01 ansible_connection=local", ("ansible_connection='local'", "transport='ssh'")),
    ],
)
def test_conflicting_duplicates(second: str, fragments: tuple[str, ...]) -> None:
    first = "kvm01 pool=a ansible_port=22 ansible_user=root ansible_python_interpreter=/a transport=ssh"
    fails(f"# hosts\n{first}\n[other]\n{second}\n", 4, *fragments)


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ("kvm01:22 ansible_port=2222", ("ansible_port", ":port")),
        ("root@kvm01 ansible_user=admin", ("ansible_user", "user@")),
        ("kvm01 python=/a ansible_python_interpreter=/b", ("ansible_python_interpreter",)),
        ("kvm01 pool=a pool=b", ("same line",)),
    ],
)
def test_contradictions_on_one_line(line: str, fragments: tuple[str, ...]) -> None:
    fails(f"ok\n{line}\n", 2, *fragments)


def test_repeating_a_key_with_the_same_value_is_fine() -> None:
    host = only("kvm01:22 ansible_port=22 pool=a pool=a\n")
    assert (host.port, host.pool) == (22, "a")


def test_conflicting_group_vars() -> None:
    fails("[g]\nh\n[g:vars]\nqemu=/a\n[g:vars]\nqemu=/b\n", 6, "[g:vars]", "line 4")


def test_repeated_group_vars_with_the_same_value_are_fine() -> None:
    inv = parse("[g]\nh\n[g:vars]\nqemu=/a\n[g:vars]\nqemu=/a\n")
    assert inv.hosts[0].qemu == "/a"


# --------------------------------------------------------------- unknown keys


def test_unknown_keys_warn_once_per_key_name() -> None:
    inv = parse(
        """\
        [g]
        kvm01 ansible_become=yes http_port=80
        kvm02 ansible_become=yes
        [g:vars]
        ansible_become=true
        ntp_server=ntp.example.com
        """
    )
    assert len(inv.hosts) == 2
    assert inv.warnings == (
        "hosts.txt:2: unknown key 'ansible_become' ignored (3 occurrences)",
        "hosts.txt:2: unknown key 'http_port' ignored",
        "hosts.txt:6: unknown key 'ntp_server' ignored",
    )


def test_strict_makes_unknown_keys_errors_at_the_first_one() -> None:
    text = "kvm01 pool=a\nkvm02 ansible_become=yes\nkvm03 ansible_become=yes\n"
    err = fails(text, 2, "'ansible_become'", "strict", strict=True)
    assert err.exit_code == 3
    fails("[g]\nh\n[g:vars]\nfoo=1\n", 4, "'foo'", strict=True)


def test_strict_accepts_a_clean_inventory() -> None:
    inv = parse("kvm01 pool=a ansible_host=10.0.0.1\n", strict=True)
    assert inv.warnings == ()


# --------------------------------------------------------------- IPv6


@pytest.mark.parametrize(
    "token",
    [
        "::1",
        "[::1]:22",
        "[::1]",
        "[2001:db8::1]",
        "2001:db8::1",
        "fe80::1%eth0",
        "2001:db8:0:0:0:0:0:1",
        "[2001:db8:0:0:0:0:0:1]:2222",
        "root@::1",
        "root@[::1]:22",
    ],
)
def test_ipv6_host_tokens_are_refused_with_advice(token: str) -> None:
    fails(f"[g]\nok\n{token} pool=x\n", 3, "IPv6", "ansible_host=")


def test_ipv6_through_ansible_host() -> None:
    inv = parse(
        """\
        v6a ansible_host=::1
        v6b ansible_host=[2001:db8::1] ansible_port=2222
        v6c ansible_host=fe80::1%eth0
        """
    )
    assert [h.address for h in inv.hosts] == ["::1", "2001:db8::1", "fe80::1%eth0"]
    assert inv.hosts[1].port == 2222


# --------------------------------------------------------------- malformed lines


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        ("root@", ("empty host name",)),
        (":22", ("empty host name",)),
        ("@kvm01", ("empty user",)),
        ("a@b@kvm01", ("more than one '@'",)),
        ('""', ("empty host name",)),
        ("kvm/01", ("invalid host name",)),
        ("kvm01 pool", ("expected key=value", "'pool'")),
        ("kvm01 =x", ("invalid key name",)),
        ("kvm01 my-key=1", ("invalid key name 'my-key'",)),
        ("kvm01:0", ("bad port '0'",)),
        ("kvm01:65536", ("bad port '65536'",)),
        ("kvm01:ssh", ("bad port 'ssh'",)),
        ("kvm01:", ("bad port ''",)),
        ("kvm01 ansible_port=x", ("bad port 'x'", "ansible_port")),
        ("kvm01 ansible_port=", ("needs a value",)),
        ("kvm01 accel=xen", ("bad accel 'xen'", "auto, kvm, tcg")),
        ("kvm01 accel=KVM", ("bad accel 'KVM'",)),
        ("kvm01 transport=telnet", ("unsupported transport 'telnet'",)),
        ("kvm01 ansible_connection=winrm", ("unsupported ansible_connection 'winrm'",)),
        ("kvm01 ansible_connection=paramiko", ("'paramiko'",)),
        ('kvm01 qemu="/usr/bin', ('unterminated " quote',)),
        ("kvm01 qemu='/usr/bin", ("unterminated ' quote",)),
        ('"kvm01', ('unterminated " quote',)),
        ("kvm01 qemu=/a\\", ("lone backslash",)),
        ("kvm01 qemu=", ("qemu= needs a value",)),
        ("kvm01 python=", ("python= needs a value",)),
        ("kvm01 ansible_host=", ("needs a value",)),
        ("kvm01 ansible_user='a b'", ("bad ansible_user",)),
        ("kvm01 pool=a/b", ("invalid pool name 'a/b'",)),
        ("kvm01 machine_types=a,,b", ("empty machine type",)),
        ("kvm01 machine_types='q35;rm -rf'", ("invalid machine type",)),
        ("pool=prod", ("outside a [group:vars] section",)),
        ("[prod", ("malformed section header",)),
        ("[prod] extra", ("malformed section header",)),
        ("[pr@d]", ("invalid group name 'pr@d'",)),
        ("[prod:var]", ("unknown section type 'var'",)),
        ("[prod:]", ("unknown section type ''",)),
    ],
)
def test_malformed_host_section_lines(bad: str, fragments: tuple[str, ...]) -> None:
    fails(f"# inventory\n[g]\nok01 pool=fine\n\n{bad}\nok02\n", 5, *fragments)


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        ("machine_types", ("expected key=value in [g:vars]",)),
        ("= value", ("missing key",)),
        ("my-key = 1", ("invalid key name",)),
        ("accel=xen", ("bad accel",)),
        ("transport = carrier-pigeon", ("unsupported transport",)),
        ("ansible_connection=docker", ("unsupported ansible_connection 'docker'",)),
        ("ansible_port=99999", ("bad port",)),
        ('qemu="/usr/bin', ('unterminated " quote',)),
        ("qemu='/a' '/b'", ("unexpected text after the quoted value",)),
        ("pool=", ("needs a value",)),
    ],
)
def test_malformed_vars_lines(bad: str, fragments: tuple[str, ...]) -> None:
    fails(f"[g]\nh\n[g:vars]\nqemu=/ok\n{bad}\n", 5, *fragments)


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        ("ansible_user=root", ("outside a [group:vars] section", "[kids:children]")),
        ("g other", ("one group name per line",)),
        ("g x=1", ("outside a [group:vars] section",)),
        ("all", ("'all'",)),
        ("bad/name", ("invalid group name",)),
    ],
)
def test_malformed_children_lines(bad: str, fragments: tuple[str, ...]) -> None:
    fails(f"[g]\nh\n[kids:children]\ng\n{bad}\n", 5, *fragments)


def test_children_naming_an_undefined_group() -> None:
    fails(
        """\
        [prod]
        kvm01
        [kvm:children]
        prod
        prdo
        """,
        5,
        "[kvm:children]",
        "undefined group 'prdo'",
    )


def test_group_only_named_in_vars_is_not_defined_for_children() -> None:
    fails("[a]\nh\n[p:children]\nb\n[b:vars]\nx=1\n", 4, "undefined group 'b'")


def test_vars_for_an_undefined_group() -> None:
    fails(
        """\
        [prod-skylake]
        kvm01
        [prod-skylak:vars]
        machine_types=pc-q35-7.2
        """,
        3,
        "[prod-skylak:vars]",
        "'prod-skylak'",
    )


def test_the_first_unresolved_reference_in_the_file_is_reported() -> None:
    fails("[x:vars]\nk=1\n[p:children]\nnope\n[h]\nhost\n", 1, "[x:vars]")


@pytest.mark.parametrize(
    ("text", "line", "cycle"),
    [
        ("[a]\nh\n[a:children]\na\n", 4, "a -> a"),
        ("[a]\nh\n[a:children]\nb\n[b:children]\na\n", 6, "a -> b -> a"),
        (
            "[a]\nh\n[a:children]\nb\n[b:children]\nc\n[c:children]\nb\n",
            8,
            "b -> c -> b",
        ),
        (
            "[top:children]\na\n[a:children]\nb\n[b:children]\nc\n[c:children]\na\n[c]\nh\n",
            8,
            "a -> b -> c -> a",
        ),
    ],
)
def test_children_cycles(text: str, line: int, cycle: str) -> None:
    fails(text, line, "cycle", cycle)


def test_diamond_is_not_a_cycle() -> None:
    inv = parse(
        """\
        [top:children]
        left
        right
        [left:children]
        leaf
        [right:children]
        leaf
        [leaf]
        kvm01
        [top:vars]
        qemu=/top
        """
    )
    assert inv.hosts[0].qemu == "/top"
    assert inv.hosts[0].pool == "leaf"


def test_long_children_chain_needs_no_recursion() -> None:
    depth = 3000
    lines = [f"[g{i}:children]\ng{i + 1}" for i in range(depth)]
    lines += [f"[g{depth}]", "kvm01", "[g0:vars]", "qemu=/root-of-chain"]
    inv = parse_inventory("\n".join(lines), PATH)
    assert inv.hosts[0].qemu == "/root-of-chain"
    assert inv.hosts[0].pool == f"g{depth}"


def test_an_error_is_raised_before_later_lines_are_read() -> None:
    # The error on line 2 wins over the one on line 3: nothing past it matters.
    fails("ok\nkvm01 accel=xen\nkvm02 transport=telnet\n", 2, "accel")


# --------------------------------------------------------------- empty inventories


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment\n; and another\n", "[prod]\n[prod:vars]\npool=x\n"],
)
def test_no_hosts_is_an_error(text: str) -> None:
    fails(text, 0, "no hosts")


# --------------------------------------------------------------- real-world Ansible


def test_real_world_ansible_inventory_parses_with_warnings() -> None:
    inv = parse(
        """\
        # Managed by the infra team. Do not edit by hand.
        [hypervisors_rack_a]
        hv-a[01:04].dc2.corp ansible_host_key_checking=false
        hv-a05.dc2.corp ansible_host=10.20.1.5 ansible_become=yes

        [hypervisors_rack_b]
        hv-b[01:02].dc2.corp

        [monitoring]
        mon01.dc2.corp ansible_connection=ssh

        [hypervisors:children]
        hypervisors_rack_a
        hypervisors_rack_b

        [hypervisors:vars]
        ansible_become=yes
        ansible_become_method=sudo
        ansible_ssh_common_args='-o ProxyJump=jump.dc2.corp -o StrictHostKeyChecking=no'
        pool=dc2-kvm

        [monitoring:vars]
        pool=monitoring

        [all:vars]
        ansible_user=automation
        ansible_python_interpreter=/usr/bin/python3
        ansible_ssh_private_key_file=~/.ssh/automation_ed25519
        """
    )
    assert len(inv.hosts) == 8
    pools = inv.pools()
    assert {k: len(v) for k, v in pools.items()} == {"dc2-kvm": 7, "monitoring": 1}
    hv = by_name(inv)["hv-a05.dc2.corp"]
    assert (hv.address, hv.user, hv.python) == ("10.20.1.5", "automation", "/usr/bin/python3")
    warned = [w.split("'")[1] for w in inv.warnings]
    assert warned == [
        "ansible_host_key_checking",
        "ansible_become",
        "ansible_become_method",
        "ansible_ssh_common_args",
        "ansible_ssh_private_key_file",
    ]
    with pytest.raises(InventoryError):
        parse(textwrap.dedent("hv ansible_become=yes\n"), strict=True)


# --------------------------------------------------------------- shipped files and loading


def test_shipped_local_inventory() -> None:
    path = REPO / "inventories" / "local.txt"
    text = path.read_text()
    content = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert content == ["localhost transport=local pool=local"]
    assert text.lstrip().startswith("#")
    inv = load_inventory(path, strict=True)
    assert [(h.name, h.transport, h.pool) for h in inv.hosts] == [("localhost", "local", "local")]


def test_shipped_example_fleet() -> None:
    inv = load_inventory(REPO / "inventories" / "example-fleet.txt", strict=True)
    pools = inv.pools()
    assert set(pools) == {"prod-skylake", "prod-epyc"}
    hosts = by_name(inv)
    sky = pools["prod-skylake"]
    assert len(sky) > 10
    assert all(h.machine_types and h.accel == "kvm" for h in inv.hosts)
    assert all(h.machine_types == sky[0].machine_types for h in sky)
    assert sky[0].name.startswith("kvm-sky01")  # zero padding kept
    bastion = [h for h in inv.hosts if h.address != h.name]
    assert bastion
    assert all(h.port is not None and h.user is not None for h in bastion)
    rhel = [h for h in inv.hosts if h.qemu == "/usr/libexec/qemu-kvm"]
    assert len(rhel) == 1
    assert all(h.source.startswith(str(REPO / "inventories" / "example-fleet.txt")) for h in hosts.values())
    assert inv.warnings == ()


def test_example_fleet_declares_kvm_parent_group() -> None:
    text = (REPO / "inventories" / "example-fleet.txt").read_text()
    assert "[kvm:children]" in text
    for key in ("ansible_host=", "ansible_port=", "ansible_user=", "qemu=/usr/libexec/qemu-kvm"):
        assert key in text


def test_load_accepts_str_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "hosts.txt"
    path.write_text("kvm01\n", encoding="utf-8")
    assert load_inventory(path).hosts[0].source == f"{path}:1"
    assert load_inventory(str(path)).path == str(path)


def test_load_strips_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "hosts.txt"
    path.write_bytes(b"\xef\xbb\xbf[g]\nkvm01\n")
    assert load_inventory(path).hosts[0].groups == ("g",)


def test_load_passes_strict_on(tmp_path: Path) -> None:
    path = tmp_path / "hosts.txt"
    path.write_text("kvm01\nkvm02 foo=1\n", encoding="utf-8")
    assert load_inventory(path).warnings
    with pytest.raises(InventoryError) as info:
        load_inventory(path, strict=True)
    assert (info.value.path, info.value.line) == (str(path), 2)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.exit_code == 3
    assert isinstance(info.value, BadInputError)
    assert str(info.value) == f"{path}: no such file"


def test_directory_is_not_an_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="is a directory"):
        load_inventory(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, which chmod cannot lock out: fail the open instead.
    path = tmp_path / "hosts.txt"
    path.write_text("kvm01\n", encoding="utf-8")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(inventory_module, "open", denied, raising=False)
    with pytest.raises(InventoryError, match="permission denied") as info:
        load_inventory(path)
    assert info.value.exit_code == 3


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "hosts.txt"
    path.write_bytes(b"kvm01\nkvm\xff02\n")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(path)


def test_parse_does_no_io() -> None:
    # The path only labels messages: a path that does not exist is fine.
    inv = parse_inventory("kvm01\n", "/nonexistent/dir/hosts.txt")
    assert inv.hosts[0].source == "/nonexistent/dir/hosts.txt:1"
    assert inv.path == "/nonexistent/dir/hosts.txt"
    assert parse_inventory("kvm01\n").hosts[0].source == "<inventory>:1"


# --------------------------------------------------------------- types and scale


def test_records_are_frozen() -> None:
    inv = parse("kvm01\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.hosts[0].pool = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.hosts = ()  # type: ignore[misc]
    assert isinstance(inv.hosts, tuple)
    assert isinstance(inv.warnings, tuple)


def test_twenty_thousand_hosts_parse_fast() -> None:
    lines = ["[all:vars]", "accel=kvm", "ansible_become=yes"]
    for dc in range(20):
        lines += [
            f"[dc{dc:02d}]",
            f"kvm[0001:0990].dc{dc:02d}.example.com ansible_user=ops",
            f"root@edge[a:j].dc{dc:02d}.example.com:2222 qemu=/usr/libexec/qemu-kvm",
            f"[dc{dc:02d}:vars]",
            "machine_types=pc-q35-7.2,pc-i440fx-7.2",
        ]
    lines += ["[kvm:children]"] + [f"dc{dc:02d}" for dc in range(20)]
    text = "\n".join(lines)
    start = time.perf_counter()
    inv = parse_inventory(text, PATH)
    elapsed = time.perf_counter() - start
    assert len(inv.hosts) == 20_000
    assert len(inv.pools()) == 20
    assert inv.hosts[0].name == "kvm0001.dc00.example.com"
    assert inv.hosts[-1].name == "edgej.dc19.example.com"
    assert inv.hosts[-1].port == 2222
    assert len(inv.warnings) == 1
    assert elapsed < 3.0, f"20,000 hosts took {elapsed:.2f}s"
