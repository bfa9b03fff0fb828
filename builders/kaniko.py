"""In-cluster image builds: an unprivileged Kaniko Job reading its context from the object store.

No Docker socket, no hostPath, no privileged mode: Kaniko builds in user space inside its own
container. Kaniko must be uid 0 *inside* that container to unpack base-image layers, so the
container drops every capability but the file-ownership ones it needs and cannot escalate;
the pod mounts no service-account token. Registry credentials come from a Secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .context import BuildContext

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
CONTEXT_PREFIX = "build-contexts/"
# What Kaniko needs as root inside its container (writing files with their layer ownership).
KANIKO_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]


class BuildFailed(RuntimeError):
    """The build Job failed or timed out; the message names the Job and why."""


@dataclass
class KanikoJobBackend:
    """Uploads the context tarball to the store and runs Kaniko on it in a Job."""

    registry: str  # e.g. registry.example.com/knflow
    store: Any = None  # storage.ObjectStore the cluster can read (MinIO)
    namespace: str = "knflow"
    bucket: str = "artifacts"
    repository: str = "predict"
    s3_endpoint: str = ""  # MinIO URL as seen from the cluster
    s3_secret: str = "knflow-minio"  # keys AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    registry_secret: str = "knflow-registry"  # a dockerconfigjson Secret
    kaniko_image: str = KANIKO_IMAGE
    timeout_seconds: int = 1800
    batch_api: Any = None  # kubernetes.client.BatchV1Api (created on first use)

    def image_for(self, context: BuildContext) -> str:
        return f"{self.registry}/{self.repository}:{context.digest[:24]}"

    def context_key(self, context: BuildContext) -> str:
        return f"{CONTEXT_PREFIX}{context.digest}.tar.gz"

    def render(self, context: BuildContext) -> dict[str, Any]:
        """The Job manifest (batch/v1) for building `context`."""
        name = f"build-{self.repository}-{context.digest[:12]}"
        env = [
            _secret_env("AWS_ACCESS_KEY_ID", self.s3_secret),
            _secret_env("AWS_SECRET_ACCESS_KEY", self.s3_secret),
            {"name": "AWS_REGION", "value": "us-east-1"},
            {"name": "S3_FORCE_PATH_STYLE", "value": "true"},
        ]
        if self.s3_endpoint:
            env.append({"name": "S3_ENDPOINT", "value": self.s3_endpoint})
        labels = {
            "app.kubernetes.io/name": "knflow-build",
            "app.kubernetes.io/part-of": "knflow",
            "knflow.dev/context-digest": context.digest[:63],
        }
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": {
                "backoffLimit": 1,
                "activeDeadlineSeconds": self.timeout_seconds,
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            {
                                "name": "kaniko",
                                "image": self.kaniko_image,
                                "args": [
                                    f"--context=s3://{self.bucket}/{self.context_key(context)}",
                                    "--dockerfile=Dockerfile",
                                    f"--destination={self.image_for(context)}",
                                    "--snapshot-mode=redo",
                                    "--use-new-run",
                                    "--cache=true",
                                    f"--label=knflow.dev/context-digest={context.digest}",
                                ],
                                "env": env,
                                "resources": {
                                    "requests": {"cpu": "500m", "memory": "1Gi"},
                                    "limits": {"cpu": "2", "memory": "4Gi"},
                                },
                                "securityContext": {
                                    "privileged": False,
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {
                                        "drop": ["ALL"],
                                        "add": list(KANIKO_CAPABILITIES),
                                    },
                                },
                                "volumeMounts": [
                                    {
                                        "name": "registry",
                                        "mountPath": "/kaniko/.docker",
                                        "readOnly": True,
                                    },
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "registry",
                                "secret": {
                                    "secretName": self.registry_secret,
                                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                                },
                            }
                        ],
                    },
                },
            },
        }

    def build(self, context: BuildContext, wait: bool = True) -> str:
        """Upload the context, submit the Job (idempotent by name) and wait for it."""
        if self.store is None:
            raise BuildFailed("KanikoJobBackend needs an object store the cluster can read")
        self.store.put(
            self.bucket,
            self.context_key(context),
            context.tar_gz(),
            content_type="application/gzip",
        )
        job = self.render(context)
        api = self._api()
        from kubernetes.client.exceptions import ApiException

        try:
            api.create_namespaced_job(self.namespace, job)
        except ApiException as exc:
            if exc.status != 409:  # 409: the same context is already being/been built
                raise BuildFailed(
                    f"cannot create Job {job['metadata']['name']}: {exc.reason}"
                ) from None
        if wait:
            self._wait(job["metadata"]["name"])
        return self.image_for(context)

    def _api(self):
        if self.batch_api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self.batch_api = client.BatchV1Api()
        return self.batch_api

    def _wait(self, name: str, poll: float = 5.0) -> None:
        deadline = time.monotonic() + self.timeout_seconds + 60
        while time.monotonic() < deadline:
            status = self._api().read_namespaced_job_status(name, self.namespace).status
            if status.succeeded:
                return
            if status.failed:
                raise BuildFailed(f"build Job {name} failed (kubectl logs job/{name})")
            time.sleep(poll)
        raise BuildFailed(f"build Job {name} did not finish in {self.timeout_seconds}s")


def _secret_env(name: str, secret: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}}
