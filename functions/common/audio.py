"""Decoding uploaded audio without ffmpeg: libsndfile (through soundfile) reads WAV, FLAC, OGG
and MP3; scipy resamples. Every way an upload can be unusable becomes a `BadInput` whose message
a user can act on, because these messages end up in the dead-letter record."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from math import gcd

import numpy as np

from ..contract import BadInput

FORMATS = ("WAV", "FLAC", "OGG", "MP3")


@dataclass(frozen=True)
class AudioInfo:
    format: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _check_riff(data: bytes, name: str) -> None:
    """libsndfile silently reads what is there of a cut-off WAV; the chunk sizes tell."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk == b"data":
            have = len(data) - body
            if size != 0xFFFFFFFF and have < size:
                raise BadInput(
                    f"{name} is a truncated WAV file: its header declares {size} bytes of "
                    f"audio data but only {have} are present (was the upload cut off?)"
                )
            return
        pos = body + size + (size & 1)
    raise BadInput(f"{name} is a truncated WAV file: no audio data chunk (was the upload cut off?)")


def read_audio_info(data: bytes, name: str = "audio") -> AudioInfo:
    """Format, rate, channels and length, without decoding; BadInput when it is not audio."""
    import soundfile

    if not data:
        raise BadInput(f"{name} is an empty file (0 bytes), not audio")
    _check_riff(data, name)
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception as exc:  # LibsndfileError, RuntimeError on some versions
        reason = (str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)).rstrip(". ")
        head = data[:16]
        looks_text = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
        hint = " (it looks like text)" if looks_text else ""
        raise BadInput(
            f"{name} is not readable audio{hint}: {reason}; expected one of "
            f"{', '.join(f.lower() for f in FORMATS)}"
        ) from None
    if info.format not in FORMATS:
        raise BadInput(f"{name} is {info.format} audio; supported: {', '.join(FORMATS)}")
    if info.frames <= 0 or info.samplerate <= 0:
        raise BadInput(f"{name} contains no audio samples")
    return AudioInfo(info.format, int(info.samplerate), int(info.channels), int(info.frames))


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) from `rate` to `target` Hz."""
    if rate == target:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(audio, target // g, rate // g).astype(np.float32)


def decode_audio(
    data: bytes,
    name: str = "audio",
    *,
    sample_rate: int = 16000,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, AudioInfo]:
    """Mono float32 samples at `sample_rate`, plus what the file was.

    The length limit is checked from the header before decoding, so an hour-long upload is
    refused without being read into memory.
    """
    import soundfile

    info = read_audio_info(data, name)
    if max_seconds is not None and info.seconds > max_seconds:
        raise BadInput(
            f"{name} is {info.seconds:.1f} s long, over this service's limit of "
            f"{max_seconds:g} s (config max_audio_seconds)"
        )
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise BadInput(f"{name} could not be decoded: {exc}") from None
    if samples.shape[0] == 0:
        raise BadInput(f"{name} contains no audio samples")
    mono = samples.mean(axis=1)
    if not np.isfinite(mono).all():
        raise BadInput(f"{name} contains invalid (non-finite) samples")
    return resample(mono, int(rate), sample_rate), info
