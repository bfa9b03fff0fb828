"""The schema of `knflow.yaml`. Field names are Knative's wherever Knative has the concept."""

from __future__ import annotations

import difflib

import yaml

from .schema import (
    AnyValue,
    Bool,
    Ctx,
    Either,
    Int,
    Lazy,
    MapOf,
    Obj,
    Schema,
    Seq,
    Str,
    duration,
)

DNS_LABEL = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
ATTRIBUTE = r"[a-z0-9]{1,20}"  # CloudEvents attribute/extension names

# Autoscaling annotations Knative understands (serving/pkg/apis/autoscaling), so a typo'd one
# is caught here instead of being silently ignored by the cluster.
AUTOSCALING_PREFIX = "autoscaling.knative.dev/"
AUTOSCALING_KEYS = (
    "class",
    "metric",
    "target",
    "target-utilization-percentage",
    "min-scale",
    "max-scale",
    "initial-scale",
    "activation-scale",
    "scale-down-delay",
    "window",
    "panic-window-percentage",
    "panic-threshold-percentage",
    "max-scale-up-rate",
    "max-scale-down-rate",
    "scale-to-zero-pod-retention-period",
    "target-burst-capacity",
)


class Annotations(Schema):
    """Free annotation names, except that `autoscaling.knative.dev/*` must be ones Knative knows."""

    def check(self, node: yaml.Node, ctx: Ctx) -> None:
        if not isinstance(node, yaml.MappingNode):
            ctx.report(node, "expected a mapping of annotation names to values")
            return
        for key, value in node.value:
            name = str(key.value)
            short = name.removeprefix(AUTOSCALING_PREFIX)
            if short != name and short not in AUTOSCALING_KEYS:
                hint = difflib.get_close_matches(short, AUTOSCALING_KEYS, n=1)
                suffix = f" (did you mean '{AUTOSCALING_PREFIX}{hint[0]}'?)" if hint else ""
                ctx.report(key, f"unknown annotation '{name}'{suffix}")
            Str(numbers_ok=True).check(value, ctx.at(name))


def _is_mapping(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode)


def _is_scalar(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode)


# A destination: a reference to a service of this pipeline, or a URI (Knative's duckv1.Destination).
DESTINATION = Obj(
    {
        "ref": Obj(
            {"kind": Str(), "apiVersion": Str(), "name": Str(DNS_LABEL), "namespace": Str()},
            required=("name",),
        ),
        "uri": Str(r"(https?://\S+|/\S*)"),
    },
    one_of=("ref", "uri"),
)

DELIVERY = Obj(
    {
        "retry": Int(minimum=0, maximum=100),
        "backoffPolicy": Str(choices=("linear", "exponential")),
        "backoffDelay": Str(validate=duration),
        "timeout": Str(validate=duration),
        "deadLetterSink": DESTINATION,
    }
)

ATTRIBUTE_MAP = MapOf(Str(numbers_ok=True), key_pattern=ATTRIBUTE, what="attribute name")

# Knative Trigger `filters` (CloudEvents Subscriptions API): each entry has exactly one dialect.
FILTER: Obj = Obj(
    {
        "exact": ATTRIBUTE_MAP,
        "prefix": ATTRIBUTE_MAP,
        "suffix": ATTRIBUTE_MAP,
        "all": Seq(Lazy(lambda: FILTER)),
        "any": Seq(Lazy(lambda: FILTER)),
        "not": Lazy(lambda: FILTER),
        "cesql": Str(),
    },
    one_of=("exact", "prefix", "suffix", "all", "any", "not", "cesql"),
)

ENV_VAR = Obj(
    {
        "name": Str(r"[A-Za-z_][A-Za-z0-9_]*"),
        "value": Str(numbers_ok=True),
        "valueFrom": Obj(
            {"secretKeyRef": Obj({"name": Str(), "key": Str()}, required=("name", "key"))},
            required=("secretKeyRef",),
        ),
    },
    required=("name",),
)

QUANTITIES = MapOf(
    Str(numbers_ok=True), key_pattern=r"cpu|memory|nvidia\.com/gpu|ephemeral-storage"
)

MODEL_SOURCE = Obj({"name": Str(), "uri": Str()}, required=("uri",))

TRAFFIC_TARGET = Obj(
    {
        "revisionName": Str(),
        "latestRevision": Bool(),
        "percent": Int(minimum=0, maximum=100),
        "tag": Str(DNS_LABEL),
    }
)

SERVICE = Obj(
    {
        "name": Str(DNS_LABEL),
        "function": Str(r"[a-z][a-z0-9_]*"),
        "image": Str(),
        "models": Seq(MODEL_SOURCE),
        "env": Seq(ENV_VAR),
        "config": AnyValue(),
        "containerConcurrency": Int(minimum=0, maximum=1000),
        "timeoutSeconds": Int(minimum=1, maximum=3600),
        "annotations": Annotations(),
        "resources": Obj({"requests": QUANTITIES, "limits": QUANTITIES}),
        "traffic": Seq(TRAFFIC_TARGET),
    },
    required=("name", "function"),
    owner="service '{name}'",
)

TRIGGER = Obj(
    {
        "name": Str(DNS_LABEL),
        "broker": Str(DNS_LABEL),
        "filter": Obj({"attributes": ATTRIBUTE_MAP}),
        "filters": Seq(FILTER),
        "subscriber": DESTINATION,
        "delivery": DELIVERY,
    },
    required=("name", "subscriber"),
    owner="trigger '{name}'",
)

SOURCE = Obj(
    {
        "name": Str(DNS_LABEL),
        "kind": Str(choices=("store", "minio-webhook", "ping")),
        "buckets": Seq(Str(DNS_LABEL)),
        "authTokenEnv": Str(r"[A-Za-z_][A-Za-z0-9_]*"),
        "schedule": Str(),
        "data": Either((_is_mapping, AnyValue()), (_is_scalar, Str()), what="JSON data"),
        "contentType": Str(),
        "type": Str(r"[a-zA-Z0-9][-a-zA-Z0-9_.]*"),  # ping: the event type it emits
    },
    required=("name", "kind"),
    owner="source '{name}'",
)

PIPELINE = Obj(
    {
        "apiVersion": Str(choices=("knflow.dev/v1alpha1",)),
        "kind": Str(choices=("Pipeline",)),
        "metadata": Obj({"name": Str(DNS_LABEL), "namespace": Str(DNS_LABEL)}),
        "broker": Obj({"name": Str(DNS_LABEL), "delivery": DELIVERY}, owner="broker"),
        "buckets": Seq(Str(DNS_LABEL)),
        "services": Seq(SERVICE, unique_key="name"),
        "triggers": Seq(TRIGGER, unique_key="name"),
        "sources": Seq(SOURCE, unique_key="name"),
    },
    required=("apiVersion", "kind"),
    owner="",
)
