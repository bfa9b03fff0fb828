"""The running instance of a data directory, as `knflow up` describes it in `instance.json`.

CLI commands find the control API, the broker and the service URLs here. A file left behind by
an instance that died (its pid is gone) is reported as stale rather than trusted.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class NotRunning(Exception):
    """No live knflow instance uses this data directory; the message says what to do."""


def instance_file(data_dir: Path) -> Path:
    return Path(data_dir) / ".knflow" / "instance.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Instance:
    pid: int
    namespace: str
    broker_url: str
    control_url: str
    store_url: str
    services: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    data_dir: str = ""

    @classmethod
    def load(cls, data_dir: Path) -> Instance:
        """The live instance of `data_dir`; NotRunning when there is none (or only a stale file)."""
        path = instance_file(data_dir)
        hint = f"start one with: knflow up --data {data_dir}"
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotRunning(f"no knflow instance is running for {data_dir} ({hint})") from None
        except (OSError, ValueError) as exc:
            raise NotRunning(f"cannot read {path}: {exc} ({hint})") from None
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        instance = cls(**known)
        if not pid_alive(int(instance.pid)):
            raise NotRunning(
                f"no knflow instance is running for {data_dir}: {path.name} is stale "
                f"(process {instance.pid} is gone; {hint})"
            )
        return instance

    def write(self, data_dir: Path) -> Path:
        path = instance_file(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)
        return path

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """Call the control API; (status, decoded JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.control_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type or "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, {"message": raw.decode(errors="replace")}
        except urllib.error.URLError as exc:
            raise NotRunning(
                f"the knflow instance (pid {self.pid}) does not answer at {self.control_url}: "
                f"{exc.reason}"
            ) from None
