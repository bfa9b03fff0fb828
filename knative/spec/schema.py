"""A small schema language that validates YAML *nodes*, so every error carries its line.

PyYAML's composed node tree keeps the source position of every key and value; validating that
tree (rather than the plain dict) is what lets `knflow spec validate` say
``knflow.yaml:12: unknown field 'contanerConcurrency' in service 'transcribe'``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from eventing.durations import parse_duration


@dataclass
class Problem:
    """One thing wrong with a spec, with the 1-based line it was found on."""

    line: int
    message: str


@dataclass
class Ctx:
    """Where the validator is: the owning object ('service 'x'') and the field path below it."""

    owner: str
    path: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)

    def at(self, name: str) -> Ctx:
        return Ctx(self.owner, (*self.path, name), self.problems)

    def owned_by(self, owner: str) -> Ctx:
        return Ctx(owner, (), self.problems)

    def report(self, node: yaml.Node, message: str, hint: str = "") -> None:
        """Record a problem; `hint` (e.g. a spelling suggestion) goes after the location."""
        where = f" in {self.owner}" if self.owner else ""
        if self.path:
            where += f" ({'.'.join(self.path)})"
        hint = f" ({hint})" if hint else ""
        self.problems.append(Problem(node.start_mark.line + 1, f"{message}{where}{hint}"))


class Schema:
    """Base of every schema node: `check` reports problems, never raises."""

    def check(self, node: yaml.Node, ctx: Ctx) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag.endswith(":null"):
        return "empty"
    return f"{node.value!r}"


class Str(Schema):
    def __init__(
        self,
        pattern: str | None = None,
        choices: tuple[str, ...] | None = None,
        validate: Callable[[str], str | None] | None = None,
        numbers_ok: bool = False,
    ):
        self.pattern = re.compile(pattern) if pattern else None
        self.choices = choices
        self.validate = validate
        self.numbers_ok = numbers_ok

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        ok_tags = ("tag:yaml.org,2002:str",)
        if self.numbers_ok:
            ok_tags += ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        if not isinstance(node, yaml.ScalarNode) or node.tag not in ok_tags:
            ctx.report(node, f"expected a string, got {_kind(node)}")
            return
        value = node.value
        if self.choices and value not in self.choices:
            ctx.report(node, f"{value!r} is not one of {', '.join(self.choices)}")
        elif self.pattern and not self.pattern.fullmatch(value):
            ctx.report(node, f"{value!r} does not match {self.pattern.pattern}")
        elif self.validate and (err := self.validate(value)):
            ctx.report(node, err)


class Int(Schema):
    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            ctx.report(node, f"expected an integer, got {_kind(node)}")
            return
        value = int(node.value)
        if self.minimum is not None and value < self.minimum:
            ctx.report(node, f"{value} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            ctx.report(node, f"{value} is above the maximum {self.maximum}")


class Bool(Schema):
    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            ctx.report(node, f"expected true or false, got {_kind(node)}")


class AnyValue(Schema):
    """Free-form (a function's own `config`): any YAML is accepted."""

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        return


class Seq(Schema):
    def __init__(self, item: Schema, unique_key: str | None = None):
        self.item, self.unique_key = item, unique_key

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        if not isinstance(node, yaml.SequenceNode):
            ctx.report(node, f"expected a list, got {_kind(node)}")
            return
        seen: set[str] = set()
        for i, child in enumerate(node.value):
            self.item.check(child, ctx.at(f"[{i}]") if not self.unique_key else ctx)
            if self.unique_key and isinstance(child, yaml.MappingNode):
                name = _scalar(child, self.unique_key)
                if name is not None:
                    if name in seen:
                        ctx.report(child, f"duplicate {self.unique_key} {name!r}")
                    seen.add(name)


class MapOf(Schema):
    """A mapping with free keys (matching `key_pattern`) and values of one schema."""

    def __init__(self, value: Schema, key_pattern: str | None = None, what: str = "key"):
        self.value = value
        self.key_pattern = re.compile(key_pattern) if key_pattern else None
        self.what = what

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        if not isinstance(node, yaml.MappingNode):
            ctx.report(node, f"expected a mapping, got {_kind(node)}")
            return
        _check_duplicate_keys(node, ctx)
        for key, value in node.value:
            if self.key_pattern and not self.key_pattern.fullmatch(str(key.value)):
                ctx.report(key, f"invalid {self.what} {key.value!r}")
            self.value.check(value, ctx.at(str(key.value)))


class Obj(Schema):
    """A mapping with a fixed set of fields; unknown fields are errors (with a suggestion).

    `owner` names the object in messages (e.g. ``"service '{name}'"``) so a problem deep inside
    says which service it belongs to.
    """

    def __init__(
        self,
        fields: dict[str, Schema],
        required: tuple[str, ...] = (),
        owner: str | None = None,
        one_of: tuple[str, ...] = (),
        extra: Callable[[yaml.MappingNode, Ctx], None] | None = None,
    ):
        self.fields, self.required, self.owner = fields, required, owner
        self.one_of, self.extra = one_of, extra

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        if not isinstance(node, yaml.MappingNode):
            ctx.report(node, f"expected a mapping, got {_kind(node)}")
            return
        if self.owner:
            ctx = ctx.owned_by(self.owner.format(name=_scalar(node, "name") or "?"))
        _check_duplicate_keys(node, ctx)
        present = set()
        for key, value in node.value:
            name = str(key.value)
            present.add(name)
            schema = self.fields.get(name)
            if schema is None:
                ctx.report(key, f"unknown field '{name}'", did_you_mean(name, self.fields))
                continue
            schema.check(value, ctx.at(name))
        for name in self.required:
            if name not in present:
                ctx.report(node, f"missing required field '{name}'")
        if self.one_of and sum(f in present for f in self.one_of) != 1:
            ctx.report(node, f"exactly one of {', '.join(self.one_of)} is required")
        if self.extra:
            self.extra(node, ctx)


class Either(Schema):
    """Accepts the first alternative whose `accepts(node)` is true (e.g. string or mapping)."""

    def __init__(self, *alternatives: tuple[Callable[[yaml.Node], bool], Schema], what: str):
        self.alternatives, self.what = alternatives, what

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        for accepts, schema in self.alternatives:
            if accepts(node):
                schema.check(node, ctx)
                return
        ctx.report(node, f"expected {self.what}, got {_kind(node)}")


class Lazy(Schema):
    """Refers to a schema defined later (recursive filters)."""

    def __init__(self, get: Callable[[], Schema]):
        self.get = get

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        self.get().check(node, ctx)


def did_you_mean(name: str, known, prefix: str = "") -> str:
    """A spelling suggestion for an unknown name, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean '{prefix}{close[0]}'?" if close else ""


def _check_duplicate_keys(node: yaml.MappingNode, ctx: Ctx) -> None:
    seen: set[str] = set()
    for key, _ in node.value:
        if key.value in seen:
            ctx.report(key, f"duplicate field '{key.value}'")
        seen.add(key.value)


def _scalar(node: yaml.MappingNode, name: str) -> str | None:
    for key, value in node.value:
        if key.value == name and isinstance(value, yaml.ScalarNode):
            return str(value.value)
    return None


def duration(value: str) -> str | None:
    """Validator for ISO-8601 durations (Knative's `backoffDelay`, `timeout`)."""
    try:
        parse_duration(value)
    except ValueError as exc:
        return str(exc)
    return None
