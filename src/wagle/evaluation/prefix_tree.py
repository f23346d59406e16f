"""A question's candidate answers scored in one sequence: their tokens packed as a prefix tree.

The candidates of a question (answer, paraphrase, perturbed answers, or multiple-choice
options) share the prompt and often the first words of the answer. In a prefix tree every
shared token is one node, computed once. A node attends to its ancestors only (a 4D attention
mask) and sits at its depth (its position id), exactly what it sees in each of the candidates
that pass through it; so its hidden state is theirs, and the NLL of a candidate's token is read
from the node that precedes it on the candidate's path. The prompt's keys and values are thus
computed once per question, as are those of common answer prefixes. Measured on the
playground's forget10: a question's 7 candidates hold 289 tokens and their tree 118.

It needs attention that takes an arbitrary mask with position ids: transformers' ``sdpa`` and
``eager`` implementations (``packs_trees``). Flash attention takes only 2D padding masks,
ALiBi models take no position ids, and a sliding window is not applied to a custom mask:
those are scored one candidate at a time (``likelihood.grouped_token_nlls``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wagle.data.prompt import IGNORE_INDEX
from wagle.sequence import slices_by_mask

Example = dict[str, list[int]]


@dataclass(frozen=True)
class PrefixTree:
    """The candidates of one question as a tree of n nodes, parents before children."""

    tokens: list[int]  # [n] token id of each node
    parent: list[int]  # [n] the parent node, -1 for a root
    depth: list[int]  # [n] position of the node's token in its sequences
    predictor: list[int]  # [m] node whose output predicts each labelled token, candidates in order
    target: list[int]  # [m] each labelled token
    counts: list[int]  # [k] labelled tokens of each candidate


def prefix_tree(examples: list[Example]) -> PrefixTree:
    """The tree of encoded examples (``input_ids``, ``labels`` with -100 on the prompt)."""
    node_of: dict[tuple[int, int], int] = {}  # (parent, token) → node
    tokens: list[int] = []
    parent: list[int] = []
    depth: list[int] = []
    predictor: list[int] = []
    target: list[int] = []
    counts: list[int] = []
    for example in examples:
        node, path = -1, []
        for token in example["input_ids"]:
            if (node, token) not in node_of:
                node_of[node, token] = len(tokens)
                tokens.append(token)
                parent.append(node)
                depth.append(len(path))
            node = node_of[node, token]
            path.append(node)
        labels = enumerate(example["labels"])
        picks = [(path[k - 1], y) for k, y in labels if k > 0 and y != IGNORE_INDEX]
        predictor += [p for p, _ in picks]
        target += [y for _, y in picks]
        counts.append(len(picks))
    return PrefixTree(tokens, parent, depth, predictor, target, counts)


def packs_trees(model: torch.nn.Module, trees: list[PrefixTree]) -> bool:
    """Whether ``model`` computes the trees exactly (module doc)."""
    config = model.config
    window = (
        getattr(config, "sliding_window", None)
        if getattr(config, "use_sliding_window", 1)
        else None
    )
    longest = max((max(t.depth) + 1 for t in trees), default=0)
    return (
        getattr(config, "_attn_implementation", None) in ("sdpa", "eager")
        and "position_ids" in inspect.signature(model.forward).parameters
        and slices_by_mask(model)
        and (window is None or longest <= window)
    )


def tree_batch(trees: list[PrefixTree], pad_token_id: int, mask_dtype: torch.dtype | None) -> dict:
    """Model inputs of B trees padded to N nodes: ``input_ids``, ``position_ids`` [B, N],
    ``attention_mask`` [B, 1, N, N] (bool, or additive in ``mask_dtype`` for eager attention),
    ``logits_to_keep`` [B, N] (the predictor nodes); and ``rows`` [m], the row of each labelled
    token's predictor among the kept positions, and ``targets`` [m]."""
    width = max(len(t.tokens) for t in trees)
    input_ids = torch.full((len(trees), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros(len(trees), width, dtype=torch.long)
    parent = torch.full((len(trees), width), -1, dtype=torch.long)  # padding: no parent
    keep = torch.zeros(len(trees), width, dtype=torch.bool)
    for b, tree in enumerate(trees):
        input_ids[b, : len(tree.tokens)] = torch.tensor(tree.tokens)
        position_ids[b, : len(tree.tokens)] = torch.tensor(tree.depth)
        parent[b, : len(tree.tokens)] = torch.tensor(tree.parent)
        keep[b, tree.predictor] = True
    # A node attends to itself and to what its parent attends to; depth by depth, so that the
    # parents' rows are complete. Padding nodes attend to themselves only.
    attend = torch.eye(width, dtype=torch.bool).repeat(len(trees), 1, 1)  # [B, N, N]
    for depth in range(1, int(position_ids.max()) + 1):
        b, node = torch.nonzero((position_ids == depth) & (parent >= 0), as_tuple=True)
        attend[b, node] |= attend[b, parent[b, node]]
    attend = attend.unsqueeze(1)  # [B, 1, N, N]
    kept_row = (keep.flatten().cumsum(0) - 1).view_as(keep)  # [B, N]: row among kept positions
    rows = torch.cat([kept_row[b, tree.predictor] for b, tree in enumerate(trees)])
    mask = attend
    if mask_dtype is not None:  # eager attention adds the mask to its scores
        mask = torch.zeros(attend.shape, dtype=mask_dtype).masked_fill(
            ~attend, torch.finfo(mask_dtype).min
        )
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": mask,
        "logits_to_keep": keep,
        "rows": rows,
        "targets": torch.tensor([y for tree in trees for y in tree.target], dtype=torch.long),
    }


def tree_token_nll(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """NLL [m] fp32 of every labelled token of a ``tree_batch``, trees and candidates in order."""
    inputs = {k: v.to(model.device) for k, v in batch.items() if k not in ("rows", "targets")}
    logits = model(**inputs).logits  # [kept positions, V]
    log_probs = F.log_softmax(logits.float(), dim=-1)
    rows, targets = batch["rows"].to(model.device), batch["targets"].to(model.device)
    return -log_probs[rows, targets]


def eager_mask_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype of an additive mask for eager attention; None (a bool mask) for sdpa."""
    return model.dtype if model.config._attn_implementation == "eager" else None
