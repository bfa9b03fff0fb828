"""`knflow split info`: where each variant cuts ResNet-50 and what each half costs."""

from __future__ import annotations

import argparse

from ..common import CliError, command, emit, group


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "split", "Split-model serving: ResNet-50 in two halves (A and B)")
    info = command(verbs, "info", run_info, "Show each split variant's FLOPs and parameters", True)
    info.add_argument("--variant", help="only this variant (a-light, balanced, a-heavy)")
    info.add_argument(
        "--image-size", type=int, default=224, help="input height and width (default 224)"
    )
    info.add_argument("--weights", help="weights URI to check and report (default: untrained)")


def run_info(args: argparse.Namespace) -> int:
    from functions.split.variants import VARIANTS, variant_name

    if not 32 <= args.image_size <= 4096:
        raise CliError("--image-size must be between 32 and 4096", 2)
    try:
        names = [variant_name(args.variant)] if args.variant else list(VARIANTS)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    from functions.split import WeightsError, costs, load_resnet50
    from functions.split.model import UNTRAINED

    weights = UNTRAINED
    if args.weights:
        try:
            _, weights = load_resnet50(args.weights)
        except WeightsError as exc:
            raise CliError(str(exc)) from None
    rows = []
    for name in names:
        cost = costs(name, args.image_size)
        total = cost["a"].flops + cost["b"].flops
        rows.append(
            {
                "variant": name,
                "cut_after": VARIANTS[name],
                "image_size": args.image_size,
                "weights": weights,
                "untrained": weights == UNTRAINED,
                "a": cost["a"].as_dict(),
                "b": cost["b"].as_dict(),
                "a_share": round(cost["a"].flops / total, 4),
                "intermediate_bytes": 4 * _prod(cost["a"].output_shape),
            }
        )
    if emit(rows, args.output):
        return 0
    _print_table(rows)
    print(f"\nFLOPs per image at {args.image_size}x{args.image_size}; weights: {weights}")
    return 0


def _print_table(rows: list[dict]) -> None:
    from ..common import table

    table(
        [
            [
                r["variant"],
                r["cut_after"],
                _g(r["a"]["flops"]),
                _m(r["a"]["params"]),
                _g(r["b"]["flops"]),
                _m(r["b"]["params"]),
                f"{r['a_share']:.0%}",
                "x".join(str(d) for d in r["a"]["output_shape"][1:]),
                f"{r['intermediate_bytes'] / 1e6:.2f} MB",
            ]
            for r in rows
        ],
        [
            "variant",
            "cut after",
            "A gflops",
            "A params",
            "B gflops",
            "B params",
            "A share",
            "tensor",
            "tensor size",
        ],
    )


def _g(flops: int) -> str:
    return f"{flops / 1e9:.2f}"


def _m(params: int) -> str:
    return f"{params / 1e6:.2f}M"


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out
