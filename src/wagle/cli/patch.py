"""``wagle patch create|apply|revert|info|compose``: unlearning as a sparse, revertible module."""

from __future__ import annotations

import argparse
import json

from wagle.cli import COMMANDS

DESCRIPTION = """\
A patch is the outcome of an unlearning run as a module: for every weight the run changed,
its position and its old and new values (in the model's dtype), plus a fingerprint of the base
model it applies to. Masked unlearning changes only the masked weights, so the patch is a
fraction of the model; applying and reverting it are exact to the bit, in fp32 and bf16.

A model that does not match the patch (other tensors, shapes, dtypes, or other values at the
patched positions) is refused before anything is written. Outputs are written atomically; an
existing output is replaced only with --overwrite. See docs/patches.md."""

EPILOG = """\
examples:
  wagle unlearn ... --mask mask.safetensors --save patch --out runs/npo   (writes runs/npo/patch.safetensors)
  wagle patch create --base target/ --unlearned runs/npo --out npo.patch.safetensors
  wagle patch info npo.patch.safetensors
  wagle patch apply --model target/ --patch npo.patch.safetensors --out target-npo/
  wagle patch revert --model target-npo/ --patch npo.patch.safetensors --out target-again/
  wagle patch compose request1.safetensors request2.safetensors --out both.safetensors

In Python, on a loaded model (a server switching policies without reloading):
  from wagle.patches import apply_patch, revert_patch
  apply_patch(model, "npo.patch.safetensors"); ...; revert_patch(model, "npo.patch.safetensors")
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "patch",
        help=COMMANDS["patch"],
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="the patch from a base model to an unlearned one (two model directories)",
        description="Compare two saved models tensor by tensor and write the entries whose bits "
        "differ. If the unlearned directory is a `wagle unlearn` output, its method, mask "
        "ratio and hash, recipe hash and evaluation summary go into the patch's metadata.",
    )
    create.add_argument("--base", required=True, help="the model before unlearning (directory)")
    create.add_argument("--unlearned", required=True, help="the unlearned model (directory)")
    create.add_argument("--out", required=True, help="patch file to write (.safetensors)")
    create.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    create.set_defaults(func=_create)

    for action, role, result in (
        ("apply", "the patch's base model", "the patched model"),
        ("revert", "a model the patch was applied to", "the base model again"),
    ):
        sub = actions.add_parser(
            action,
            help=f"write {result} into a new directory",
            description=f"Copy --model ({role}) to --out with the patched entries written "
            f"{'to their new' if action == 'apply' else 'back to their old'} values; the model "
            "is never loaded (the files are copied and the entries written in place, bit-exact).",
        )
        sub.add_argument("--model", required=True, help=f"{role} (directory)")
        sub.add_argument("--patch", required=True, help="patch file (.safetensors)")
        sub.add_argument("--out", required=True, help="output model directory")
        sub.add_argument("--overwrite", action="store_true", help="replace an existing --out")
        sub.set_defaults(func=_apply if action == "apply" else _revert)

    info = actions.add_parser(
        "info",
        help="entries and bytes per layer, and the metadata",
        description="What a patch holds.",
    )
    info.add_argument("patch", help="patch file (.safetensors)")
    info.add_argument("--json", action="store_true", help="print the figures as JSON")
    info.set_defaults(func=_info)

    compose = actions.add_parser(
        "compose",
        help="one patch equal to applying P1 then P2",
        description="P2 must have been made on the model P1 produces: where both patches change "
        "an entry, P2's old value must be P1's new one, else composing is refused.",
    )
    compose.add_argument("first", metavar="P1", help="the patch applied first")
    compose.add_argument("second", metavar="P2", help="the patch applied second")
    compose.add_argument("--out", required=True, help="patch file to write")
    compose.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    compose.set_defaults(func=_compose)


def _create(args: argparse.Namespace) -> int:
    from wagle import validate
    from wagle.patches.checks import check_new_output, directory_signature

    check_new_output(args.out, args.overwrite)
    directory_signature(args.base)
    validate.check_model_dir(args.unlearned, "unlearned model")
    from wagle.patches import ModelFiles, create_patch
    from wagle.patches.runs import run_directory_metadata

    metadata = run_directory_metadata(args.unlearned)
    base, unlearned = ModelFiles(args.base), ModelFiles(args.unlearned, "unlearned model")
    patch = create_patch(base, unlearned, args.out, metadata, what=f"model {args.unlearned}")
    print(f"wrote {args.out}: {_summary(patch)}")
    return 0


def _apply(args: argparse.Namespace) -> int:
    return _apply_or_revert(args, "apply")


def _revert(args: argparse.Namespace) -> int:
    return _apply_or_revert(args, "revert")


def _apply_or_revert(args: argparse.Namespace, direction: str) -> int:
    from wagle.patches.checks import check_model_fits, check_new_output

    role = "the patch's base" if direction == "apply" else "the patch's result"
    check_model_fits(args.model, args.patch, role)  # from the headers, before any tensor
    check_new_output(args.out, args.overwrite)
    from wagle.patches import apply_patch_files, open_patch, revert_patch_files

    patch = open_patch(args.patch)
    run = apply_patch_files if direction == "apply" else revert_patch_files
    run(args.model, patch, args.out)
    print(
        f"wrote {args.out}: {args.model} with {args.patch} {direction}{'ied' if direction == 'apply' else 'ed'} ({_summary(patch)})"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from wagle.patches.checks import patch_header

    patch_header(args.patch)
    from wagle.cli.mask import print_table
    from wagle.patches import patch_info

    info = patch_info(args.patch)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"{info['path']}: {info['entries']:,} changed weights of {info['base_weights']:,} "
        f"({info['changed_fraction']:.2%}) in {info['tensors']} of {info['base_tensors']} tensors; "
        f"patch {_mb(info['file_bytes'])}, model {_mb(info['base_bytes'])} "
        f"(patch/model {info['bytes_ratio']:.3f})"
    )
    for key, value in info["metadata"].items():
        print(f"{key + ':':<16} {json.dumps(value)}")
    print()
    rows = [
        [
            layer,
            f"{r['entries']:,}",
            f"{r['weights']:,}",
            f"{r['entries'] / r['weights']:.4f}",
            f"{r['patch_bytes']:,}",
        ]
        for layer, r in info["layers"].items()
    ]
    print_table(["layer", "entries", "weights", "changed", "bytes"], rows)
    return 0


def _compose(args: argparse.Namespace) -> int:
    from wagle.patches.checks import check_new_output, patch_header

    patch_header(args.first)
    patch_header(args.second)
    check_new_output(args.out, args.overwrite)
    from wagle.patches import compose_patches

    patch = compose_patches(args.first, args.second, args.out)
    print(f"wrote {args.out} = {args.first} then {args.second}: {_summary(patch)}")
    return 0


def _summary(patch) -> str:
    return f"{patch.total_entries:,} entries in {len(patch.names)} tensors, {_mb(patch.file_bytes)}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n:,} bytes"
