"""Audio pipeline figures, measured side by side in one run on this machine.

- whisper real-time factor (processing seconds / audio seconds) at the demo size (whisper
  `tiny` dimensions), for growing input lengths (the bundled clip tiled to 10 s, 30 s, 60 s,
  120 s: one, two and four 30 s windows);
- compose seconds per candidate at the demo size (the shipped spec's width and steps), split into
  diffusion and spectrogram -> audio (inverse mel + 32 Griffin-Lim iterations), for growing
  image widths (128 ... 512 columns = 1.3 ... 5.1 s of audio).

    .venv/bin/python bench/audio_bench.py [--threads N] [--quick] [--data DIR]

The demo whisper has untrained weights, so its decoder is capped at `max_tokens` (32) per
window; with real weights decoding length follows the speech. Figures are printed as ratios to
the smallest size so that they compare within one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from functions.common.audio import decode_audio  # noqa: E402
from functions.config import FunctionConfig  # noqa: E402
from knative.demo import CLIP  # noqa: E402


def started(function: str, data: Path, uri: str, **config):
    from functions import load_function

    cfg = FunctionConfig(
        function=function,
        config=config,
        models=[{"name": "m", "uri": uri}],
        store_url=f"file://{data}",
        data_dir=data,
    )
    fn = load_function(function)
    fn.start(cfg)
    return fn


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) if repeat > 1 else times[0]


def bench_whisper(data: Path, threads: int, lengths: list[float], repeat: int) -> None:
    fn = started("transcribe", data, "builtin:whisper-demo", threads=threads)
    speech, _ = decode_audio(CLIP.read_bytes())
    print(f"\nwhisper (builtin:whisper-demo = tiny dims, untrained), {threads} thread(s)")
    print(f"{'audio s':>8} {'windows':>8} {'time s':>8} {'RTF':>7} {'x time of first':>16}")
    fn.transcribe(speech[:16000])  # warm-up
    base = None
    for seconds in lengths:
        n = int(seconds * 16000)
        audio = np.tile(speech, n // len(speech) + 1)[:n]
        took = best(lambda a=audio: fn.transcribe(a), repeat)
        base = base or took
        windows = int(np.ceil(seconds / 30))
        print(f"{seconds:8.0f} {windows:8d} {took:8.2f} {took / seconds:7.3f} {took / base:16.2f}")


def bench_compose(data: Path, threads: int, widths: list[int], steps: int, repeat: int) -> None:
    fn = started("compose", data, "builtin:riffusion-demo", threads=threads, steps=steps)
    prompt = "uplifting major key acoustic guitar and piano, bright, joyful, inspired by sun"
    print(f"\ncompose (builtin:riffusion-demo, untrained), {steps} steps, {threads} thread(s)")
    print(
        f"{'width':>6} {'audio s':>8} {'diffusion s':>12} {'to audio s':>11} "
        f"{'s/candidate':>12} {'x time of first':>16}"
    )
    base = None
    for width in widths:
        fn.width = width
        image = fn.image(prompt, 0)  # warm-up at this size
        diff = best(lambda: fn.image(prompt, 1), repeat)
        audio_t = best(lambda im=image: fn.audio(im, 1), repeat)
        total = diff + audio_t
        base = base or total
        print(
            f"{width:6d} {(width - 1) / 100:8.2f} {diff:12.2f} {audio_t:11.2f} "
            f"{total:12.2f} {total / base:16.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer sizes, one repetition")
    parser.add_argument("--data", help="instance dir for the model cache (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data or tempfile.mkdtemp(prefix="knflow-bench-"))
    demo = _demo_compose_config()
    repeat = 1 if args.quick else 2
    lengths = [10, 30, 60] if args.quick else [10, 30, 60, 120]
    widths = (
        [128, demo["width"], 512] if args.quick else sorted({128, 256, demo["width"], 384, 512})
    )
    print(f"data: {data}; demo compose config: {demo}")
    bench_whisper(data, args.threads, lengths, repeat)
    bench_compose(data, args.threads, widths, int(demo["steps"]), repeat)
    return 0


def _demo_compose_config() -> dict:
    """The compose settings of the shipped spec (read without validating the whole file)."""
    import yaml

    from knative.spec import default_spec_path

    raw = yaml.safe_load(default_spec_path().read_text())
    svc = next(s for s in raw["services"] if s["name"] == "compose")
    return {"width": 512, "steps": 20, **svc.get("config", {})}


if __name__ == "__main__":
    sys.exit(main())
