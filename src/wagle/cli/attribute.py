"""``wagle attribute``: score every weight, write one mask per (ratio, γ)."""

from __future__ import annotations

import argparse
from pathlib import Path

from wagle import config as cfg
from wagle import validate
from wagle.attribution.config import AttributionConfig
from wagle.cli import COMMANDS, add_loading_flags
from wagle.cli.mask import print_density
from wagle.data.load import Record, load_qa, load_text, read_records
from wagle.errors import WagleError
from wagle.io import fingerprint
from wagle.models import load_pretrained
from wagle.unlearning.devices import fsdp_requested

EPILOG = """\
γ convention: gradients are SUMMED over samples (each sample's loss is the mean NLL of its
answer tokens, or of all tokens for raw text) and the retain gradient is summed over as many
retain samples as forget samples, drawn at random. γ = 1e-6 reproduces the published ranking;
on mean gradients the same ranking needs γ/N.

Sweeps come from one pass over the data:
  wagle attribute ... --ratio 0.5 0.8 0.95 --gamma 1e-6 1e-3 1e2 --out masks/wagle.safetensors
writes masks/wagle-ratio0.5-gamma1e-06.safetensors and so on (one file per combination).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attribute",
        help=COMMANDS["attribute"],
        description="Score every weight of a causal LM for its influence on forgetting (WAGLE "
        "or a baseline score) and write the top-ρ weights as a mask.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="model directory (or hub id in cache)")
    parser.add_argument("--forget", required=True, help="forget data: QA or text JSON/JSONL")
    parser.add_argument("--forget-split", help="split, when --forget is a directory or hub id")
    parser.add_argument("--retain", help="retain data (needed by wagle and wagle-fisher)")
    parser.add_argument("--retain-split", help="split, when --retain is a directory or hub id")
    parser.add_argument("--out", required=True, help="mask file; a sweep adds -ratio…-gamma…")
    parser.add_argument("--config", help="YAML file of AttributionConfig options")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    add_loading_flags(parser, "existing mask files")
    cfg.add_arguments(parser, AttributionConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = cfg.build(AttributionConfig, cfg.load_yaml(args.config), args)
    forget, retain = check_inputs(args, config)
    fsdp = fsdp_requested(config.fsdp)  # FSDP1 and DeepSpeed stop here
    import torch

    from wagle.attribution.masks import save_mask  # torch: only once the inputs are checked
    from wagle.attribution.pipeline import attribute
    from wagle.sharding import all_reduce_sum_, is_main_process

    model, tokenizer = load_pretrained(
        args.model, dtype=config.dtype, trust_remote_code=args.trust_remote_code, fsdp=fsdp
    )

    result = attribute(model, tokenizer, forget, retain, config, progress=not args.quiet)
    sources = {"model": args.model, **_fingerprints(args)}
    main_process = is_main_process()  # several processes: the first one writes
    for gamma in result.gammas:
        scores = result.scores(gamma)
        for ratio in sorted(config.ratio):  # the smallest first: it is checked before any write
            mask = result.select(scores, ratio)
            # under FSDP2 each process holds chunks: the count is summed over all of them
            selected = torch.tensor(sum(int(m.sum()) for m in mask.values()))
            if not int(all_reduce_sum_(selected)):
                eligible = result.metadata(ratio, gamma, scores)["n_eligible"]
                raise WagleError(
                    f"ratio {ratio:g} selects no weight of the {eligible:,} eligible ones "
                    "(nothing could be unlearned): raise --ratio"
                )
            path = out_path(Path(args.out), ratio, gamma, config)
            if not main_process:
                continue
            save_mask(mask, path, result.metadata(ratio, gamma, scores) | sources)
            print(f"wrote {path}  (ratio {ratio}, gamma {gamma}, method {config.method})")
            if not args.quiet:
                print_density(mask)
    return 0


def check_inputs(args: argparse.Namespace, config: AttributionConfig) -> tuple[list, list]:
    """Everything about the inputs that can be wrong, checked before the model is loaded;
    returns the forget and retain records."""
    validate.check_model_dir(args.model)
    validate.check_data_source(args.forget, args.forget_split, "forget")
    if args.retain:
        validate.check_data_source(args.retain, args.retain_split, "retain")
    gammas = config.gamma if config.uses_gamma else [None]
    for ratio in config.ratio:
        for gamma in gammas:
            validate.check_output(out_path(Path(args.out), ratio, gamma, config), args.overwrite)
    forget = load_records(args.forget, args.forget_split)
    retain = load_records(args.retain, args.retain_split) if args.retain else []
    if config.uses_gamma and not retain:
        raise WagleError(f"score method {config.method!r} needs --retain")
    validate.warn_overlap(forget, retain)
    return forget, retain


def load_records(source: str, split: str | None = None) -> list[Record] | list[str]:
    """QA records if the records have a ``question``, else the ``text`` of each."""
    first = read_records(source, split)[0]
    return load_qa(source, split) if "question" in first else load_text(source, split)


def out_path(out: Path, ratio: float, gamma: float | None, config: AttributionConfig) -> Path:
    """``out`` itself for a single mask; in a sweep, ``<stem>-ratio<ρ>[-gamma<γ>]<suffix>``."""
    n_gammas = len(config.gamma) if config.uses_gamma else 1
    if len(config.ratio) * n_gammas == 1:
        return out
    tag = f"-ratio{ratio:g}" + (f"-gamma{gamma:g}" if gamma is not None else "")
    return out.with_name(out.stem + tag + (out.suffix or ".safetensors"))


def _fingerprints(args: argparse.Namespace) -> dict[str, str | None]:
    """Hashes of the local model directory and data files (None for hub ids)."""

    def of(source: str | None, split: str | None = None) -> str | None:
        if not source or not Path(source).exists():
            return None
        files = sorted(Path(source).glob(f"{split}.json*")) if split else [Path(source)]
        return fingerprint(*files) if files else None

    return {
        "model_fingerprint": of(args.model),
        "forget_fingerprint": of(args.forget, args.forget_split),
        "retain_fingerprint": of(args.retain, args.retain_split),
        "forget_split": args.forget_split,
        "retain_split": args.retain_split,
    }
