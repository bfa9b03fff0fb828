"""Trigger filters with Knative's semantics, compiled once into plain predicates.

Two dialects, as on a Knative Trigger:
- legacy `filter.attributes`: every listed attribute must equal the value exactly; an empty
  value means "present, with any value";
- `filters` (CloudEvents Subscriptions API): a list of expressions that must all hold, each one
  of `exact`, `prefix`, `suffix` (every listed attribute must match), `all`, `any`, `not`.
  When `filters` is set, `filter.attributes` is ignored (Knative does the same).

Filters see attributes only, never data. A predicate takes the event's attributes as strings
(see `attributes_of`), so 100 triggers cost 100 small function calls per event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Attributes = Mapping[str, str]
Predicate = Callable[[Attributes], bool]


class UnsupportedFilter(ValueError):
    """A filter this broker cannot evaluate (e.g. CESQL); the Trigger is reported not ready."""


def attributes_of(doc: Mapping[str, Any]) -> dict[str, str]:
    """The attributes of a structured-JSON event as strings (data excluded)."""
    return {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in doc.items()
        if k != "data" and k != "data_base64"
    }


def compile_trigger(
    filter_attributes: Mapping[str, str] | None, filters: list[dict] | None
) -> Predicate:
    """The predicate of a Trigger: `filters` when given, else the legacy attribute filter."""
    if filters:
        parts = [compile_filter(f) for f in filters]
        return _all(parts)
    return legacy(filter_attributes or {})


def legacy(attributes: Mapping[str, str]) -> Predicate:
    """`filter.attributes`: exact matches; an empty value only requires the attribute."""
    items = [(k, "" if v is None else str(v)) for k, v in attributes.items()]
    if not items:
        return _always

    def match(attrs: Attributes) -> bool:
        for name, want in items:
            got = attrs.get(name)
            if got is None or (want and got != want):
                return False
        return True

    return match


def compile_filter(expr: dict) -> Predicate:
    """One `filters` entry (exactly one dialect key) as a predicate."""
    if not isinstance(expr, dict) or len(expr) != 1:
        raise UnsupportedFilter(f"a filter needs exactly one dialect, got {expr!r}")
    ((dialect, arg),) = expr.items()
    if dialect in _STRING_DIALECTS:
        return _strings(_STRING_DIALECTS[dialect], arg)
    if dialect == "all":
        return _all([compile_filter(e) for e in arg])
    if dialect == "any":
        return _any([compile_filter(e) for e in arg])
    if dialect == "not":
        inner = compile_filter(arg)
        return lambda attrs: not inner(attrs)
    if dialect == "cesql":
        raise UnsupportedFilter("CESQL filters are not supported by the embedded broker")
    raise UnsupportedFilter(f"unknown filter dialect {dialect!r}")


_STRING_DIALECTS: dict[str, Callable[[str, str], bool]] = {
    "exact": lambda got, want: got == want,
    "prefix": str.startswith,
    "suffix": str.endswith,
}


def _strings(test: Callable[[str, str], bool], arg: Mapping[str, Any]) -> Predicate:
    items = [(k, str(v)) for k, v in arg.items()]
    if len(items) == 1:  # the common case, without the loop
        ((name, want),) = items
        if test is _STRING_DIALECTS["exact"]:
            return lambda attrs: attrs.get(name) == want
        return lambda attrs: (got := attrs.get(name)) is not None and test(got, want)

    def match(attrs: Attributes) -> bool:
        for name, want in items:
            got = attrs.get(name)
            if got is None or not test(got, want):
                return False
        return True

    return match


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def match(attrs: Attributes) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop: no generator on the hot path
            if not part(attrs):
                return False
        return True

    return match


def _any(parts: list[Predicate]) -> Predicate:
    def match(attrs: Attributes) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop: no generator on the hot path
            if part(attrs):
                return True
        return False

    return match


def possible_types(
    filter_attributes: Mapping[str, str] | None, filters: list[dict] | None
) -> frozenset[str] | None:
    """The event types a Trigger can match at all, when its filter pins them (else None).

    The broker indexes Triggers by these, so an event is only tested against Triggers that
    could want its type (plus those that do not pin one): 100 Triggers cost about as much as 1.
    """
    if filters:
        return _types_all(filters)
    wanted = (filter_attributes or {}).get("type")
    return frozenset([str(wanted)]) if wanted else None


def _types(expr: dict) -> frozenset[str] | None:
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    ((dialect, arg),) = expr.items()
    if dialect == "exact" and isinstance(arg, dict) and "type" in arg:
        return frozenset([str(arg["type"])])
    if dialect == "all" and isinstance(arg, list):
        return _types_all(arg)
    if dialect == "any" and isinstance(arg, list) and arg:
        parts = [_types(e) for e in arg]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*parts)
    return None


def _types_all(exprs: list[dict]) -> frozenset[str] | None:
    known = [t for t in (_types(e) for e in exprs) if t is not None]
    if not known:
        return None
    return frozenset.intersection(*known)


def _always(attrs: Attributes) -> bool:
    return True
