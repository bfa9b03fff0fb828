"""`compose`: sentiment + transcript → N candidate music clips (Riffusion via diffusers)."""

from .handler import Compose
from .spectrogram import SpectrogramConverter, SpectrogramParams, spectral_convergence


def new() -> Compose:
    return Compose()


__all__ = ["Compose", "SpectrogramConverter", "SpectrogramParams", "new", "spectral_convergence"]
