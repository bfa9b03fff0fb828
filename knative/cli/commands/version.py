"""`knflow version`."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata

from ..common import command, emit


def register(groups: argparse._SubParsersAction) -> None:
    command(groups, "version", run, "Show the version of knflow and its key libraries", output=True)


def run(args: argparse.Namespace) -> int:
    info = {"knflow": _version("knflow"), "python": platform.python_version()}
    for lib in ("cloudevents", "torch", "torchvision", "kubernetes", "boto3"):
        info[lib] = _version(lib)
    if not emit(info, args.output):
        for name, version in info.items():
            print(f"{name + ':':13} {version}")
    return 0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
