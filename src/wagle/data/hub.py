"""Data sets by hub id: which configs and splits each published benchmark has, read through
``datasets.load_dataset(repo_id, config, split=...)``.

A wagle split name picks one table: ``CONFIG:SPLIT``, or ``CONFIG`` for a config with one split.

=====================  ===============================================  ==========  ================
hub id                 configs                                          split       fields
=====================  ===============================================  ==========  ================
locuslab/TOFU          forget01/05/10, retain90/95/99, full,            train       question, answer
                       forget01/05/10_perturbed, retain_perturbed,                  (+ paraphrased_answer,
                       real_authors(_perturbed), world_facts(_perturbed),           perturbed_answer)
                       holdout01/05/10
cais/wmdp              wmdp-bio, wmdp-chem, wmdp-cyber                  test        question, choices, answer
cais/wmdp-corpora      bio-retain-corpus, cyber-forget-corpus,          train       text
                       cyber-retain-corpus (the bio forget corpus is
                       gated: request it, then use its local copy)
muse-bench/MUSE-News,  raw: forget, retain1, retain2, holdout           (named)     text
muse-bench/MUSE-Books  knowmem: forget_qa, retain_qa, *_qa_icl         (named)     question, answer
                       verbmem: forget                                              prompt, gt
                       privleak: forget, retain, holdout                            text
=====================  ===============================================  ==========  ================

E.g. ``--forget locuslab/TOFU --forget-split forget10``, ``--data cais/wmdp --split wmdp-bio``,
``--forget muse-bench/MUSE-News --forget-split raw:forget``. Another hub id is read the same
way, its default split ``train``.

Offline machines read the local datasets cache (``HF_DATASETS_OFFLINE=1``) or a local mirror:
``WAGLE_HUB_MIRROR=DIR`` where ``DIR/<owner>/<name>`` is a copy of the hub repository (its
README.md and data files, e.g. a ``git clone``); the same ``load_dataset`` call then reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagle.errors import WagleError

MIRROR_VARIABLE = "WAGLE_HUB_MIRROR"

TOFU_CONFIGS = (
    "full",
    *(f"forget{p}" for p in ("01", "05", "10")),
    *(f"retain{p}" for p in ("90", "95", "99")),
    *(f"forget{p}_perturbed" for p in ("01", "05", "10")),
    "retain_perturbed",
    "real_authors",
    "real_authors_perturbed",
    "world_facts",
    "world_facts_perturbed",
    *(f"holdout{p}" for p in ("01", "05", "10")),
)
MUSE_SPLITS = {
    "raw": ("forget", "retain1", "retain2", "holdout"),
    "knowmem": ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"),
    "verbmem": ("forget",),
    "privleak": ("forget", "retain", "holdout"),
}


@dataclass(frozen=True)
class HubDataset:
    """The configs of a hub data set, each with its splits (name one when there are several)."""

    configs: dict[str, tuple[str, ...]]

    def resolve(self, name: str) -> tuple[str, str]:
        config, _, split = name.partition(":")
        if config not in self.configs:
            raise WagleError(f"unknown config {config!r}; available: {', '.join(self.configs)}")
        splits = self.configs[config]
        if not split and len(splits) > 1:
            raise WagleError(f"name a split as {config}:SPLIT, one of {', '.join(splits)}")
        split = split or splits[0]
        if split not in splits:
            raise WagleError(
                f"config {config!r} has no split {split!r}; it has {', '.join(splits)}"
            )
        return config, split


HUB_DATASETS: dict[str, HubDataset] = {
    "locuslab/TOFU": HubDataset(dict.fromkeys(TOFU_CONFIGS, ("train",))),
    "cais/wmdp": HubDataset(dict.fromkeys(("wmdp-bio", "wmdp-chem", "wmdp-cyber"), ("test",))),
    "cais/wmdp-corpora": HubDataset(
        dict.fromkeys(
            ("bio-retain-corpus", "cyber-forget-corpus", "cyber-retain-corpus"), ("train",)
        )
    ),
    "muse-bench/MUSE-News": HubDataset(MUSE_SPLITS),
    "muse-bench/MUSE-Books": HubDataset(MUSE_SPLITS),
}


def read_hub(repo_id: str, name: str | None) -> list[dict[str, Any]]:
    """The records of table ``name`` (``CONFIG`` or ``CONFIG:SPLIT``) of hub data set ``repo_id``."""
    import datasets

    known = HUB_DATASETS.get(repo_id)
    if known is not None and name is None:
        raise WagleError(f"name the config of {repo_id} to read: {', '.join(known.configs)}")
    if known is not None:
        config, split = known.resolve(name)
    else:
        config, _, split = (name or "").partition(":")
        config, split = config or None, split or "train"
    try:
        return datasets.load_dataset(_location(repo_id), config, split=split).to_list()
    except Exception as err:  # datasets raises many types; the user needs one line
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WagleError(
            f"cannot load {repo_id!r} ({name}) from the hub or cache: {message}"
        ) from None


def _location(repo_id: str) -> str:
    """``repo_id``, or its copy under ``$WAGLE_HUB_MIRROR`` when there is one."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    if mirror and (Path(mirror) / repo_id).is_dir():
        return str(Path(mirror) / repo_id)
    return repo_id
