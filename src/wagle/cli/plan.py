"""``wagle plan``: expected peak memory per device for attribution and unlearning, from the
model's config alone (no model is loaded)."""

from __future__ import annotations

import argparse
import json

from wagle.cli import COMMANDS
from wagle.errors import WagleError
from wagle.plan import (
    PRESETS,
    GiB,
    fsdp_plan_table,
    load_shape,
    plan_table,
    recipe_memory,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help=COMMANDS["plan"],
        description="Peak memory per device, from a model's config alone: attribution, and "
        "unlearning with dense (full) or selective AdamW state, bf16 or fp32 weights, with and "
        "without gradient checkpointing. The model and its formulas: wagle/plan.py.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help=f"config.json, model directory or preset: {', '.join(PRESETS)}",
    )
    parser.add_argument("--ratio", type=float, nargs="+", default=[0.2], help="mask ratio(s) ρ")
    parser.add_argument("--devices", type=int, default=1, help="data-parallel devices (DDP)")
    parser.add_argument(
        "--fsdp",
        type=int,
        default=0,
        metavar="N",
        help="FSDP2 over N devices instead of DDP: weights, gradients, mask and optimizer state "
        "sharded (per-device bytes, with the layers gathered in flight)",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="forget samples per device step")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per sample")
    parser.add_argument(
        "--config",
        help="an unlearning recipe (YAML): its precision, checkpointing, batch, length, optimizer "
        "state and method (frozen reference copies, trained layers), a step and a trajectory point",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (bytes)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.fsdp < 0 or (args.fsdp and args.devices != 1):
        raise WagleError("--fsdp N takes the number of devices (N ≥ 1); leave out --devices")
    shape = load_shape(args.model)
    if args.config:
        return run_recipe(args, shape)
    if args.fsdp:
        rows = fsdp_plan_table(shape, args.ratio, args.fsdp, args.batch_size, args.max_length)
    else:
        rows = plan_table(shape, args.ratio, args.devices, args.batch_size, args.max_length)
    if args.json:
        print(json.dumps({"parameters": shape.parameters, "rows": rows}, indent=2))
        return 0
    _heading(args, args.model, shape, args.batch_size, args.max_length)
    print(f"{'stage':<10}{'dtype':<15}{'ckpt':<6}{'ratio':>6}  {'state':<18}{'total':>10}  parts")
    for row in rows:
        parts = _parts(row["parts"])
        ratio = "" if row["ratio"] is None else f"{row['ratio']:g}"
        dtype = row["dtype"] + ("+bf16" if row.get("autocast") else "")
        print(
            f"{row['stage']:<10}{dtype:<15}{'on' if row['checkpointing'] else 'off':<6}"
            f"{ratio:>6}  {row['state']:<18}{_size(row['total']):>10}  {parts}"
        )
    return 0


def run_recipe(args: argparse.Namespace, shape) -> int:
    """The recipe's own settings: one step and one trajectory point per ratio."""
    from wagle.config import load_yaml
    from wagle.unlearning.config import UnlearnConfig, method_options, split_recipe

    run_options, options = split_recipe(load_yaml(args.config))
    config = UnlearnConfig(**run_options)
    options = method_options(config.method, options)
    plans = {
        r: recipe_memory(shape, config, options, r, args.devices, args.fsdp) for r in args.ratio
    }
    if args.json:
        print(json.dumps({"parameters": shape.parameters, "ratios": plans}, indent=2))
        return 0
    _heading(args, f"{args.config} on {args.model}", shape, config.batch_size, config.max_length)
    for ratio, plan in plans.items():
        for phase, label in (("step", "a step"), ("evaluation", "a trajectory point")):
            total = _size(sum(plan[phase].values()))
            print(f"ratio {ratio:g}, {label}: {total} ({_parts(plan[phase])})")
    return 0


def _heading(args, subject: str, shape, batch_size: int, max_length: int) -> None:
    spread = f"FSDP2 over {args.fsdp} devices" if args.fsdp else f"{args.devices} device(s)"
    print(f"{subject}: {shape.parameters:,} parameters, {spread}, "
          f"batch {batch_size} × {max_length} tokens; per device")  # fmt: skip


def _parts(parts: dict[str, int]) -> str:
    """The non-zero parts, ``name size`` each, comma-separated."""
    return ", ".join(f"{k} {_size(v)}" for k, v in parts.items() if v)


def _size(n: int) -> str:
    """Bytes as GiB (one decimal) from 1 GiB up, else MiB."""
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / 2**20:.1f} MiB"
