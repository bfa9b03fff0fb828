"""A tiny Riffusion-format checkpoint with the real architectures and random weights.

`riffusion/riffusion-model-v1` is a Stable Diffusion v1 directory: `model_index.json` plus
`unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`. This builds the same layout with
small configs (UNet2DConditionModel, AutoencoderKL with SD's 8x latent downsampling, a 2-layer
CLIPTextModel, a CLIPTokenizer with a hand-made byte-level BPE vocabulary) so that
`StableDiffusionPipeline.from_pretrained` runs the real loading and sampling code. Its images
are noise; everything made with it says `untrained: true`.

`python -m functions.compose.tiny_model DIR` writes it into DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..common.models import write_card

# Words the hand-made tokenizer knows whole (everything else falls back to bytes, as in CLIP).
_WORDS = """a an and the of with in on for by to is music song track beat loop piano guitar
strings synth drums bass violin cello flute choir ambient acoustic electronic jazz lofi lo-fi
orchestral classical pop rock folk funk soul calm gentle soft slow fast bright warm dark sad happy
joyful uplifting melancholic tense hopeful dreamy peaceful energetic mellow major minor key chords
melody rhythm tempo positive negative neutral mood about inspired spoken words day night morning
evening sun rain love instrumental"""
WORDS = tuple(_WORDS.split())


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character map (the BPE alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def tokenizer_files(words: tuple[str, ...] | list[str] = WORDS) -> tuple[dict[str, int], list[str]]:
    """(vocab, merges): CLIP's byte alphabet (plain and `</w>`-final), left-to-right merges that
    make each word one token, then the start/end tokens last (CLIP pools at the highest id)."""
    alphabet = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    byte_map = bytes_to_unicode()
    for word in dict.fromkeys(w.lower() for w in words):
        symbols = [byte_map[b] for b in word.encode()]
        symbols[-1] += "</w>"
        while len(symbols) > 1:
            pair = f"{symbols[0]} {symbols[1]}"
            merged = symbols[0] + symbols[1]
            if pair not in merges:
                merges.append(pair)
            vocab.setdefault(merged, len(vocab))
            symbols = [merged, *symbols[2:]]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def build(dest: Path, seed: int = 0) -> Path:
    """Write the pipeline directory (safetensors weights) and its card into `dest`."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    vocab, merges = tokenizer_files()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer").mkdir(exist_ok=True)
    (dest / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (dest / "tokenizer" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    pairs = [tuple(m.split(" ")) for m in merges]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=pairs, model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),  # attention at 32x32 only
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16, 16, 16),  # four blocks: SD's 8x latent downsampling
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=512,
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(dest, safe_serialization=True)
    write_card(
        dest,
        untrained=True,
        label="Riffusion-format pipeline (tiny, untrained weights: builtin:riffusion-demo)",
    )
    return dest


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "riffusion-demo")))
