"""Cluster apply: server-side apply of the rendered resources (field manager `knflow`) and their
Ready conditions, through the `kubernetes` client with the standard kubeconfig rules.

cluster = Cluster.connect()            # ClusterUnreachable: one line saying why
for result in deploy(cluster, render(load_spec())): print(result.line)
"""

from .apply import Applied, deploy
from .client import FIELD_MANAGER, ApiError, Cluster, ClusterUnreachable, Ref
from .status import ResourceStatus, status

__all__ = [
    "FIELD_MANAGER",
    "ApiError",
    "Applied",
    "Cluster",
    "ClusterUnreachable",
    "Ref",
    "ResourceStatus",
    "deploy",
    "status",
]
