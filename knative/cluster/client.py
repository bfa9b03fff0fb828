"""A thin client over the `kubernetes` package for the few calls knflow makes: GET an object and
server-side apply it. Paths come from the manifest itself (no discovery round trips)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

FIELD_MANAGER = "knflow"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
TIMEOUT = (5, 60)  # connect, read (seconds)

# kind -> plural resource name, for every kind `knflow render` emits.
PLURALS = {
    "Namespace": "namespaces",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Service": "services",
    "Broker": "brokers",
    "Trigger": "triggers",
    "SinkBinding": "sinkbindings",
    "PingSource": "pingsources",
    "ContainerSource": "containersources",
    "JobSink": "jobsinks",
    "Job": "jobs",
}
CLUSTER_SCOPED = {"Namespace"}


class ClusterUnreachable(Exception):
    """No cluster configured, or its API server does not answer."""


class ApiError(Exception):
    """The API server refused a request; `str()` is its Status message."""

    def __init__(self, status: int, message: str, reason: str = ""):
        super().__init__(message)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Ref:
    """Where an object lives in the API: enough to GET or apply it."""

    api_version: str
    kind: str
    name: str
    namespace: str | None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Ref:
        meta = doc["metadata"]
        ns = None if doc["kind"] in CLUSTER_SCOPED else meta.get("namespace", "default")
        return cls(doc["apiVersion"], doc["kind"], meta["name"], ns)

    @property
    def resource(self) -> str:
        """kubectl's name for the type: `service.serving.knative.dev`, `configmap`."""
        group = self.api_version.rpartition("/")[0]
        singular = self.kind.lower()
        return f"{singular}.{group}" if group else singular

    @property
    def path(self) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = f"/namespaces/{quote(self.namespace)}" if self.namespace else ""
        try:
            plural = PLURALS[self.kind]
        except KeyError:
            raise ValueError(f"knflow cannot apply objects of kind {self.kind}") from None
        return f"{base}{scope}/{plural}/{quote(self.name)}"


class Cluster:
    """One API server, reached with the standard kubeconfig rules or the in-cluster account."""

    def __init__(self, api_client: Any):
        self.api = api_client
        self.host = api_client.configuration.host

    @classmethod
    def connect(cls, context: str | None = None) -> Cluster:
        """Load credentials ($KUBECONFIG, ~/.kube/config, or the pod's service account) and
        check that the API server answers; ClusterUnreachable with one line otherwise."""
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                # $KUBECONFIG read now (the library reads it once, at import).
                config.load_kube_config(
                    config_file=os.environ.get("KUBECONFIG") or None,
                    context=context,
                    client_configuration=configuration,
                )
        except (ConfigException, OSError) as exc:
            where = os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise ClusterUnreachable(
                f"no Kubernetes cluster configured ({where}: {_first_line(exc)})"
            ) from None
        configuration.retries = 1
        cluster = cls(client.ApiClient(configuration))
        cluster.version()
        return cluster

    def version(self) -> dict[str, Any]:
        """GET /version: the cheapest proof that the API server is there."""
        status, body = self._call("GET", "/version")
        if status >= 400:
            raise ClusterUnreachable(f"the Kubernetes API server at {self.host} answered {status}")
        return body

    def get(self, ref: Ref) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        status, body = self._call("GET", ref.path)
        if status == 404 and body.get("reason") == "NotFound" and _is_object_missing(body):
            return None
        if status >= 400:
            raise _api_error(ref, status, body)
        return body

    def apply(self, doc: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply as field manager `knflow`, never forcing other managers' fields."""
        ref = Ref.of(doc)
        query = {"fieldManager": FIELD_MANAGER, "force": "false"}
        if dry_run:
            query["dryRun"] = "All"
        status, body = self._call(
            "PATCH",
            f"{ref.path}?{urlencode(query)}",
            body=json.dumps(doc),  # JSON is YAML: the apply-patch+yaml body as is
            content_type=APPLY_CONTENT_TYPE,
        )
        if status >= 400:
            raise _api_error(ref, status, body)
        return body

    def _call(
        self, method: str, path: str, body: str | None = None, content_type: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self.api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self.api.call_api(method, url, headers, body, _request_timeout=TIMEOUT)
            response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnreachable(
                f"cannot reach the Kubernetes API server at {self.host}: {_reason(exc)}"
            ) from None
        except ApiException as exc:  # raised for TLS failures (status 0) and Retry-After
            if not exc.status:
                raise ClusterUnreachable(
                    f"cannot reach the Kubernetes API server at {self.host}: {exc.reason}"
                ) from None
            return exc.status, _json(exc.body)
        return response.status, _json(response.data)


def _json(raw: bytes | str | None) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return {"message": text[:200]}
    return data if isinstance(data, dict) else {}


def _is_object_missing(body: dict[str, Any]) -> bool:
    """A 404 for the object, not for its type (an uninstalled CRD gives 404 without details)."""
    return bool((body.get("details") or {}).get("name"))


def _api_error(ref: Ref, status: int, body: dict[str, Any]) -> ApiError:
    message = body.get("message") or f"HTTP {status}"
    if status == 409 and body.get("reason") == "Conflict":
        message += (
            " (knflow never forces: set the value in knflow.yaml or leave it to that manager)"
        )
    if status == 404 and not _is_object_missing(body):
        message = f"the cluster does not serve {ref.resource.split('.', 1)[-1]} {ref.kind}"
        if "knative" in ref.api_version:
            message += " (is Knative Serving/Eventing installed?)"
    return ApiError(status, message, body.get("reason", ""))


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None) or exc
    text = str(inner)
    if "Connection refused" in text or "NewConnectionError" in type(inner).__name__:
        return "connection refused"
    return _first_line(inner)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
