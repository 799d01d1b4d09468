"""Raw QMP replies to typed records: the one place QMP's JSON shapes are known.

Pure functions, no I/O, so they are tested from golden replies captured on
real hosts (libvirt's test data, QEMU 5.0 to 10.0) as well as from the QEMU on
the test machine. A reply of the wrong shape raises ``ReplyShapeError``; the
caller decides whether that query was essential (the probe fails) or partial
(recorded as a ``QueryFailure``).

Python 3.9, stdlib only: this module ships to hosts.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import features
from .document import (
    REGISTERS,
    CpuModel,
    Expansion,
    FeatureWord,
    MachineInfo,
    Scalar,
    VcpuProps,
)
from .names import UNNAMED_FEATURE

__all__ = [
    "VCPU_PROPS",
    "ReplyShapeError",
    "canonical_features",
    "decode_cpu_definitions",
    "decode_expansion",
    "decode_feature_words",
    "decode_kvm",
    "decode_machines",
    "decode_qom_path",
    "decode_vcpu",
    "decode_version",
    "resolve_machine",
    "words_to_features",
]


class ReplyShapeError(ValueError):
    """A QMP reply did not have the shape QEMU documents."""


def _obj(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ReplyShapeError("%s: expected an object, got %s" % (what, type(value).__name__))
    return value


def _list(value: Any, what: str) -> List[Any]:
    if not isinstance(value, list):
        raise ReplyShapeError("%s: expected a list, got %s" % (what, type(value).__name__))
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ReplyShapeError("%s: expected a string" % what)
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReplyShapeError("%s: expected an integer" % what)
    return value


def _opt_bool(value: Any, what: str) -> Optional[bool]:
    if value is None or isinstance(value, bool):
        return value
    raise ReplyShapeError("%s: expected a boolean" % what)


def decode_version(ret: Any) -> Tuple[str, str]:
    """``query-version`` -> ("7.2.22", "Debian 1:7.2+dfsg-7+deb12u18+b3")."""
    obj = _obj(ret, "query-version")
    q = _obj(obj.get("qemu"), "query-version.qemu")
    version = "%d.%d.%d" % tuple(
        _int(q.get(k), "query-version.qemu." + k) for k in ("major", "minor", "micro")
    )
    package = obj.get("package", "")
    return version, _str(package, "query-version.package").strip()


def decode_kvm(ret: Any) -> Tuple[Optional[bool], Optional[bool]]:
    """``query-kvm`` -> (present, enabled)."""
    obj = _obj(ret, "query-kvm")
    return _opt_bool(obj.get("present"), "query-kvm.present"), _opt_bool(
        obj.get("enabled"), "query-kvm.enabled"
    )


def decode_machines(ret: Any) -> Tuple[MachineInfo, ...]:
    out = []
    for i, item in enumerate(_list(ret, "query-machines")):
        m = _obj(item, "query-machines[%d]" % i)
        alias = m.get("alias")
        out.append(
            MachineInfo(
                name=_str(m.get("name"), "query-machines[%d].name" % i),
                alias=_str(alias, "query-machines[%d].alias" % i) if alias is not None else None,
                is_default=bool(m.get("is-default", False)),
                deprecated=bool(m.get("deprecated", False)),
            )
        )
    return tuple(sorted(out, key=lambda m: m.name))


def resolve_machine(machines: Iterable[MachineInfo], requested: str) -> Optional[str]:
    """The versioned machine type a name or alias (``q35``) stands for, if QEMU knows it.

    Stored data must never say ``q35``: its meaning moves with every QEMU
    release, which is exactly the drift fleetcpu exists to pin down.
    """
    by_alias = None
    for m in machines:
        if m.name == requested:
            return m.name
        if m.alias == requested:
            by_alias = m.name
    return by_alias


def canonical_features(names: Iterable[Any], what: str) -> Tuple[str, ...]:
    """De-duplicated, canonical, sorted: QEMU lists some names twice (``pku`` on Skylake)."""
    canonical = features.canonical
    out = set()
    for n in names:
        out.add(canonical(n if type(n) is str else _str(n, what)) or UNNAMED_FEATURE)
    return tuple(sorted(out))


#: Expansion property name -> its canonical feature name, or None for a
#: non-feature property. Every expansion a QEMU gives repeats the same few
#: hundred names, so each is classified once (a probe decodes some twenty).
_KEY_FEATURE: Dict[str, Optional[str]] = {}


def _key_feature(key: str) -> Optional[str]:
    canon = None if features.is_property(key) else features.canonical(key)
    _KEY_FEATURE[key] = canon
    return canon


def decode_cpu_definitions(ret: Any) -> Tuple[CpuModel, ...]:
    out = []
    for i, item in enumerate(_list(ret, "query-cpu-definitions")):
        what = "query-cpu-definitions[%d]" % i
        d = _obj(item, what)
        unavailable = d.get("unavailable-features", [])
        alias_of = d.get("alias-of")
        typename = d.get("typename")
        migration_safe = d.get("migration-safe")
        out.append(
            CpuModel(
                name=_str(d.get("name"), what + ".name"),
                unavailable_features=canonical_features(
                    _list(unavailable, what + ".unavailable-features"), what
                ),
                alias_of=_str(alias_of, what + ".alias-of") if alias_of is not None else None,
                deprecated=bool(d.get("deprecated", False)),
                migration_safe=_opt_bool(migration_safe, what + ".migration-safe"),
                static=bool(d.get("static", False)),
                typename=_str(typename, what + ".typename") if typename is not None else None,
            )
        )
    return tuple(sorted(out, key=lambda m: m.name))


def decode_expansion(ret: Any, vocabulary: Optional[Iterable[str]] = None) -> Expansion:
    """``query-cpu-model-expansion`` -> features (canonical) and the other properties.

    A static expansion names only features, each once. A full one adds
    aliases and QOM properties; when the static expansion of the same QEMU is
    at hand its feature names are the ``vocabulary`` that settles any name
    the feature table does not know, so a new QEMU property can never be
    mistaken for a CPU feature.
    """
    obj = _obj(ret, "query-cpu-model-expansion")
    model = _obj(obj.get("model"), "query-cpu-model-expansion.model")
    name = _str(model.get("name"), "query-cpu-model-expansion.model.name")
    raw = _obj(model.get("props", {}), "query-cpu-model-expansion.model.props")
    vocab = frozenset(vocabulary) if vocabulary is not None else None
    feats: Dict[str, bool] = {}
    from_alias: Dict[str, bool] = {}
    props: Dict[str, Scalar] = {}
    known = _KEY_FEATURE
    for key, value in raw.items():
        if value is True or value is False:
            canon = known[key] if key in known else _key_feature(key)
            if canon is not None and (vocab is None or canon in vocab):
                # The canonical spelling's own value wins over an alias's.
                (feats if canon == key else from_alias)[canon] = value
                continue
            props[key] = value
        elif isinstance(value, (int, float, str)) or value is None:
            props[key] = value
    for canon, value in from_alias.items():
        feats.setdefault(canon, value)
    # Underscore spellings of properties are QEMU's legacy aliases (lbr_fmt).
    for key in [k for k in props if "_" in k and k.replace("_", "-") in props]:
        del props[key]
    return Expansion(
        model=name,
        features={k: feats[k] for k in sorted(feats)},  # keys alone sort 3x faster than items
        props={k: props[k] for k in sorted(props)},
    )


def decode_feature_words(ret: Any, what: str = "feature-words") -> Tuple[FeatureWord, ...]:
    out = []
    for i, item in enumerate(_list(ret, what)):
        w = _obj(item, "%s[%d]" % (what, i))
        register = _str(w.get("cpuid-register"), "%s[%d].cpuid-register" % (what, i)).lower()
        if register not in REGISTERS:
            raise ReplyShapeError("%s[%d]: unknown register %r" % (what, i, register))
        out.append(
            FeatureWord(
                leaf=_int(w.get("cpuid-input-eax"), "%s[%d].cpuid-input-eax" % (what, i)),
                subleaf=_int(w.get("cpuid-input-ecx", 0), "%s[%d].cpuid-input-ecx" % (what, i)),
                register=register,
                bits=_int(w.get("features"), "%s[%d].features" % (what, i)),
            )
        )
    return tuple(sorted(out, key=lambda w: (w.leaf, w.subleaf, w.register)))


def decode_qom_path(ret: Any) -> str:
    """The first vCPU's QOM path from ``query-cpus-fast``."""
    cpus = _list(ret, "query-cpus-fast")
    if not cpus:
        raise ReplyShapeError("query-cpus-fast: no vCPU")
    return _str(_obj(cpus[0], "query-cpus-fast[0]").get("qom-path"), "query-cpus-fast[0].qom-path")


#: QOM property of the vCPU -> VcpuProps field.
VCPU_PROPS: Mapping[str, str] = {
    "vendor": "vendor",
    "family": "family",
    "model": "model",
    "stepping": "stepping",
    "model-id": "model_id",
    "level": "level",
    "xlevel": "xlevel",
    "phys-bits": "phys_bits",
}


def decode_vcpu(values: Mapping[str, Any]) -> VcpuProps:
    """``qom-get`` answers (QOM name -> value) -> VcpuProps; missing ones stay None."""
    kwargs: Dict[str, Any] = {}
    for qom, attr in VCPU_PROPS.items():
        if qom not in values:
            continue
        value = values[qom]
        if attr in ("vendor", "model_id"):
            kwargs[attr] = _str(value, "qom-get " + qom)
        else:
            kwargs[attr] = _int(value, "qom-get " + qom)
    return VcpuProps(**kwargs)


def words_to_features(words: Sequence[FeatureWord]) -> Tuple[str, ...]:
    """Names of every set bit, for reports such as ``filtered-features``."""
    out: List[str] = []
    for w in words:
        # XSAVE component words (0xD.0 eax/edx...) are state masks, not features.
        if w.bits and features.is_feature_word(w.leaf, w.subleaf, w.register):
            out.extend(features.names_for(w.leaf, w.subleaf, w.register, w.bits))
    return tuple(sorted(set(out)))
