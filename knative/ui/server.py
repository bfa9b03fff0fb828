"""Serving the page on loopback in a background thread (for `knflow up`, `knflow ui`, tests)."""

from __future__ import annotations

import threading
from pathlib import Path

from werkzeug.serving import make_server

from ..instance import Instance
from .app import create_app


class UIServer:
    """The page at `.url` until `.stop()`; port 0 picks a free port."""

    def __init__(self, instance: Instance, data_dir: Path | str, port: int = 0):
        self._server = make_server("127.0.0.1", port, create_app(instance, data_dir), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="knflow-ui", daemon=True
        )

    def start(self) -> UIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
