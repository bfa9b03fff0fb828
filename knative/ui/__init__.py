"""The knflow web page (Flask): tuning runs, deployment, and the pipeline at a glance.

`create_app(instance)` is the hook `knflow up` mounts; `knflow ui` serves it standalone.
"""

from .app import create_app

__all__ = ["create_app"]
