"""The pipeline spec (`knflow.yaml`): load, validate with line-precise errors, and type it.

pipeline = load_spec("knflow.yaml")      # raises SpecError listing every problem
pipeline.service("transcribe").autoscaling("target")
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from functions.registry import available_functions

from .model import (
    AUTOSCALING_DEFAULTS,
    Broker,
    Delivery,
    Destination,
    ModelSource,
    Pipeline,
    Service,
    Source,
    Trigger,
)
from .pipeline import AUTOSCALING_PREFIX, PIPELINE
from .schema import Ctx, Problem

__all__ = [
    "AUTOSCALING_DEFAULTS",
    "AUTOSCALING_PREFIX",
    "Broker",
    "Delivery",
    "Destination",
    "ModelSource",
    "Pipeline",
    "Service",
    "Source",
    "SpecError",
    "Trigger",
    "default_spec_path",
    "load_spec",
    "parse_spec",
]


class SpecError(Exception):
    """A spec that cannot be used; `str()` is one `file:line: message` per problem."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path, self.problems = path, sorted(problems, key=lambda p: p.line)
        super().__init__("\n".join(f"{path}:{p.line}: {p.message}" for p in self.problems))


def default_spec_path() -> Path:
    """The spec that ships with knflow: the whole seed pipeline."""
    return Path(__file__).resolve().parent.parent / "defaults" / "knflow.yaml"


def load_spec(path: str | Path | None = None) -> Pipeline:
    """Load and validate a spec file (the shipped default when `path` is None)."""
    path = Path(path) if path else default_spec_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [Problem(0, f"cannot read spec: {exc.strerror}")]) from None
    return parse_spec(text, str(path) if path != default_spec_path() else "knflow.yaml")


def parse_spec(text: str, path: str = "knflow.yaml") -> Pipeline:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError(path, [Problem(line, f"not valid YAML: {reason}")]) from None
    if node is None:
        raise SpecError(path, [Problem(1, "the spec is empty")])
    ctx = Ctx(owner="")
    PIPELINE.check(node, ctx)
    if not ctx.problems:
        _check_references(node, ctx)
    if ctx.problems:
        raise SpecError(path, ctx.problems)
    return Pipeline.parse(yaml.safe_load(text), path)


def _check_references(root: yaml.MappingNode, ctx: Ctx) -> None:
    """Names that must point at something else in the same spec (or a known function)."""
    services = {_get(s, "name").value for s in _items(root, "services")}
    buckets = {b.value for b in _seq(_get(root, "buckets"))}
    broker = _get(root, "broker")
    broker_name = _get(broker, "name").value if _get(broker, "name") else "default"
    functions = set(available_functions())

    for svc in _items(root, "services"):
        fn = _get(svc, "function")
        if fn.value not in functions:
            ctx.owned_by(f"service '{_get(svc, 'name').value}'").report(
                fn, f"unknown function '{fn.value}' (known: {', '.join(sorted(functions))})"
            )
    for owner, dest in _destinations(root):
        ref = _get(dest, "ref")
        if ref is not None and _get(ref, "name").value not in services:
            name = _get(ref, "name")
            ctx.owned_by(owner).report(name, f"'{name.value}' is not a service of this pipeline")
    for trig in _items(root, "triggers"):
        b = _get(trig, "broker")
        if b is not None and b.value != broker_name:
            ctx.owned_by(f"trigger '{_get(trig, 'name').value}'").report(
                b, f"broker '{b.value}' is not this pipeline's broker '{broker_name}'"
            )
    for src in _items(root, "sources"):
        for bucket in _seq(_get(src, "buckets")):
            if bucket.value not in buckets:
                ctx.owned_by(f"source '{_get(src, 'name').value}'").report(
                    bucket, f"bucket '{bucket.value}' is not listed under buckets"
                )


def _destinations(root: yaml.MappingNode) -> Iterator[tuple[str, yaml.MappingNode]]:
    def dead_letter(owner_node: yaml.Node | None) -> yaml.Node | None:
        return _get(_get(owner_node, "delivery"), "deadLetterSink")

    if (dls := dead_letter(_get(root, "broker"))) is not None:
        yield "broker", dls
    for trig in _items(root, "triggers"):
        owner = f"trigger '{_get(trig, 'name').value}'"
        yield owner, _get(trig, "subscriber")
        if (dls := dead_letter(trig)) is not None:
            yield owner, dls


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    return None


def _seq(node: yaml.Node | None) -> list[yaml.Node]:
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _items(root: yaml.MappingNode, key: str) -> list[yaml.MappingNode]:
    return _seq(_get(root, key))
