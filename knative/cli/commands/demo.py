"""`knflow demo`: upload a spoken clip and watch transcript -> sentiment -> music candidates."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from ..common import CliError, command, data_dir, emit


def register(groups: argparse._SubParsersAction) -> None:
    demo = command(
        groups, "demo", run, "Run the audio pipeline once on the bundled speech clip", output=True
    )
    demo.add_argument("--spec", help="pipeline file (default: the shipped knflow.yaml)")
    demo.add_argument("--clip", help="a .wav/.flac/.mp3/.ogg to upload instead of the bundled one")
    demo.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="give up this long after the upload (default 600)",
    )


def run(args: argparse.Namespace) -> int:
    from ...demo import CLIP, DemoError, run_demo
    from ...instance import Instance, NotRunning
    from ...spec import default_spec_path

    spec_path = Path(args.spec) if args.spec else default_spec_path()
    try:
        raw = yaml.safe_load(spec_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"cannot read spec {spec_path}: {exc}") from None
    clip = Path(args.clip) if args.clip else CLIP
    if not clip.is_file():
        raise CliError(f"no such clip: {clip}")
    data = data_dir(args)
    try:
        other = Instance.load(data)
    except NotRunning:
        other = None
    if other is not None:
        raise CliError(f"a knflow instance (pid {other.pid}) is already running for {data}")
    quiet = bool(args.output)
    say = (lambda _msg: None) if quiet else (lambda msg: print(msg, flush=True))
    started = time.monotonic()
    try:
        result = run_demo(raw, data.resolve(), timeout=args.timeout, clip=clip, say=say)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # the spec or the platform refused to start
        raise CliError(f"demo failed: {exc}") from None
    if not emit(result, args.output):
        print(f"Done in {time.monotonic() - started:.1f}s.")
    return 0
