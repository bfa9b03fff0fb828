"""The compose stage: sentiment + transcript → a prompt → N Riffusion spectrogram images with
different seeds → audio for each; every candidate is stored as PNG (with EXIF parameters) and
WAV under `outputs/<id>/`, and one event lists them all."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from eventing.types import MUSIC_GENERATED

from ..common import (
    input_ref,
    output_id,
    pick_device,
    put_bytes,
    put_json,
    read_json,
    reply,
    resolve_model,
    torch_threads,
)
from ..common.models import ModelError
from ..config import FunctionConfig
from ..contract import BadInput
from .prompt import build_prompt
from .spectrogram import SpectrogramConverter, png_bytes, wav_bytes

log = logging.getLogger("knflow.compose")
MIN_WIDTH = 24  # reflect padding of half the 17640-sample window needs > 20 columns of 441


def load_pipeline(path: str, device: str, dtype: Any) -> Any:
    """A diffusers StableDiffusionPipeline from a Riffusion-format directory."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.disable_progress_bar()
        lib.set_verbosity_error()
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            path, dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: not a Stable Diffusion (Riffusion) directory: {exc}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def candidate_seed(ident: str, index: int) -> int:
    """A distinct, reproducible seed per candidate (same input → same candidates)."""
    return int(hashlib.sha256(f"{ident}:{index}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


class Compose:
    """Config: `candidates` (3), `steps` (denoising steps, 20), `width` (pixels = 10 ms columns,
    512 ≈ 5 s), `guidance` (7.0), `bucket` (outputs), `threads`, `device`.
    Model: `riffusion` (default `builtin:riffusion-demo`)."""

    def __init__(self) -> None:
        self.pipe: Any = None

    def start(self, cfg: FunctionConfig) -> None:
        torch_threads(cfg.config)
        config = cfg.config
        self.store = cfg.store
        self.source = f"/knflow/functions/{cfg.service or cfg.function}"
        self.bucket = config.get("bucket", "outputs")
        self.candidates = int(config.get("candidates", 3))
        self.steps = int(config.get("steps", 20))
        self.width = int(config.get("width", 512))
        self.guidance = float(config.get("guidance", 7.0))
        if self.candidates < 1:
            raise ModelError(f"compose config: candidates must be >= 1, got {self.candidates}")
        if self.width % 8 or self.width < MIN_WIDTH:
            raise ModelError(
                f"compose config: width must be a multiple of 8 and >= {MIN_WIDTH} (columns of "
                f"10 ms; the 400 ms STFT window needs that many), got {self.width}"
            )
        self.device, dtype = pick_device(config)
        uri = cfg.model_uri("riffusion") or cfg.model_uri() or "builtin:riffusion-demo"
        self.spec = resolve_model(uri, cfg.data_dir, self.store)
        if self.spec.path is None or not (self.spec.path / "model_index.json").is_file():
            raise ModelError(f"{uri}: expected a diffusers directory with model_index.json")
        self.pipe = load_pipeline(str(self.spec.path), self.device, dtype)
        self.converter = SpectrogramConverter(device=self.device)
        self.store.create_bucket(self.bucket)

    def ready(self) -> bool:
        return self.pipe is not None

    def image(self, prompt: str, seed: int) -> Any:
        """One spectrogram image (512 mel rows x `width` 10 ms columns)."""
        import torch

        generator = torch.Generator(device=self.device).manual_seed(seed)
        result = self.pipe(
            prompt,
            height=self.converter.p.num_frequencies,
            width=self.width,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=generator,
        )
        return result.images[0]

    def audio(self, image: Any, seed: int) -> Any:
        """The image's sound: Riffusion's inverse (images carry no max value: 1.0 is as good as
        any, the audio is peak-normalised) and its EXIF parameters set on the image."""
        mel = self.converter.mel_from_image(image, max_value=1.0)
        image.getexif().update(self.converter.p.to_exif(max_value=1.0).items())
        return self.converter.audio_from_mel(mel, seed=seed)

    def candidate(self, ident: str, prompt: str, index: int, seed: int) -> dict[str, Any]:
        """Make, convert and store one candidate; its entry in the manifest."""
        t0 = time.perf_counter()
        image = self.image(prompt, seed)
        t1 = time.perf_counter()
        samples = self.audio(image, seed)
        total = self.candidates
        log.info(
            "%s: candidate %d/%d: image %.1fs, audio %.1fs",
            ident,
            index + 1,
            total,
            t1 - t0,
            time.perf_counter() - t1,
        )
        rate = self.converter.p.sample_rate
        stem = f"{ident}/candidate-{index}"
        png = put_bytes(self.store, self.bucket, f"{stem}.png", png_bytes(image), "image/png")
        wav = put_bytes(
            self.store, self.bucket, f"{stem}.wav", wav_bytes(samples, rate), "audio/wav"
        )
        return {
            "index": index,
            "seed": seed,
            "image": png.to_dict(),
            "audio": wav.to_dict(),
            "seconds": round(len(samples) / rate, 3),
        }

    def handle(self, event: Any) -> Any:
        ref = input_ref(event, "transcript")
        data = event.get_data() if isinstance(event.get_data(), dict) else {}
        label = str(data.get("label") or "neutral")
        try:
            text = str(read_json(self.store, ref).get("text") or "")
        except BadInput:
            text = str(data.get("excerpt") or "")  # the transcript went away: use the excerpt
        prompt = build_prompt(label, text)
        ident = output_id(event, "compose")
        started = time.perf_counter()
        seeds = [candidate_seed(ident, k) for k in range(self.candidates)]
        candidates = [self.candidate(ident, prompt, k, seed) for k, seed in enumerate(seeds)]
        doc = {
            "id": ident,
            "prompt": prompt,
            "sentiment": {"label": label, "score": data.get("score")},
            "transcript": ref.to_dict(),
            "candidates": candidates,
            "model": self.spec.label,
            "untrained": self.spec.untrained,
            "steps": self.steps,
            "seconds": round(time.perf_counter() - started, 3),
        }
        manifest = put_json(self.store, self.bucket, f"{ident}/manifest.json", doc)
        reply_data = {**doc, "manifest": manifest.to_dict()}
        return reply(event, "compose", MUSIC_GENERATED, self.source, reply_data, f"{ident}/")
