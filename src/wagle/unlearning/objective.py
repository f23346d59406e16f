"""What an unlearning method is: a loss over a forget/retain batch, plus optional set-up.

A method is a small class registered in ``METHODS`` with one decorator line. Its options are
a dataclass ``Options`` (defaults = published values, one help string per field) kept in
``wagle.unlearning.options``, which needs no torch, so configs and ``--help`` are checked and
shown without loading the ML stack. ``__call__(model, batch)`` returns a dict of scalar terms
whose ``"loss"`` is minimised and which also reports ``forget_nll`` / ``retain_nll``
(token-mean answer NLL) for the log.

Each term is a mean over the method's micro-batch; ``normalised_by`` names the terms that make
up the loss and the unit each is a mean over (``wagle.unlearning.scaling``): the trainer
weighs each by its micro-batch's share of the optimizer step, so that gradient accumulation
and several processes give the gradient of the whole step's mean (tested for every method).
The default, ``{"loss": "sequences"}``, treats the loss as a mean over forget samples. A
mean over something none of those units counts (CE-U's answer tokens after the first) is
declared in ``own_units`` and counted by the method's ``count_units``.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch

from wagle.data.load import Record
from wagle.sequence import labelled, mean_nll_of_logits, sequence_nll, token_mean
from wagle.sharding import model_is_sharded
from wagle.unlearning import fsdp
from wagle.unlearning.batch import ForgetRetainBatch, PairedDataset
from wagle.unlearning.options import NoOptions, RetainOptions

METHODS: dict[str, type[Objective]] = {}
Terms = dict[str, torch.Tensor]


class Objective:
    """Base of every method: default hooks do nothing; subclasses implement ``__call__``."""

    Options: ClassVar[type] = NoOptions
    # The terms that sum to "loss", each with the unit it is a mean over (scaling.UNITS, or
    # one of the method's ``own_units``).
    normalised_by: ClassVar[dict[str, str]] = {"loss": "sequences"}
    # Units a method counts itself (``count_units``), for a mean over none of scaling.UNITS.
    own_units: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    def forget_records(self, records: list[Record]) -> list[Record]:
        """The forget targets to train on (PO swaps answers for refusals)."""
        return records

    def encode(self, tokenizer: Any, forget: list[Record], max_length: int) -> None:
        """Called once before ``prepare`` with the tokenizer and the forget records (as
        ``forget_records`` returned them): a method that trains on other targets as well
        encodes them here (IdkDPO's refusal answers)."""

    def companions(self) -> dict[str, list[dict[str, list[int]]]]:
        """Encoded examples the method pairs with each forget sample, indexed like the forget
        set (IdkDPO: the refusal to each question), after ``encode``; ``PairCollator`` pads
        them into each micro-batch (``ForgetRetainBatch.companions``)."""
        return {}

    def prepare(self, model: torch.nn.Module, data: PairedDataset, pad_token_id: int) -> None:
        """Called once before training, with the model on its training device."""

    def count_units(
        self, forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor]
    ) -> list[torch.Tensor]:
        """A micro-batch's count of each of ``own_units`` (scalars on its device)."""
        return []

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        raise NotImplementedError


def mean_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Token-mean NLL over all labelled tokens of a batch (a scalar), like HF's causal LM loss."""
    return token_mean(*sequence_nll(model, batch))


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy without gradients: the original model, where a method needs it live
    (a model sharded by FSDP2, which cannot be deep-copied, is copied chunk by chunk)."""
    if model_is_sharded(model):
        return fsdp.frozen_copy(model)
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


class RetainTerm:
    """λ·NLL on the retain batch, or λ·KL(original ‖ model) averaged over labelled tokens.

    The KL variant keeps a frozen copy of the original model (built by ``prepare``).
    """

    def __init__(self, options: RetainOptions) -> None:
        self.weight, self.kind = options.retain_weight, options.retain_loss
        self.reference: torch.nn.Module | None = None

    def prepare(self, model: torch.nn.Module) -> None:
        if self.kind == "kl":
            self.reference = frozen_copy(model)

    def __call__(self, model: torch.nn.Module, retain: dict[str, torch.Tensor]) -> Terms:
        """``{"retain": λ·term, "retain_nll": token-mean NLL}``."""
        if self.kind == "nll":
            nll = mean_nll(model, retain)
            return {"retain": self.weight * nll, "retain_nll": nll.detach()}
        logits = model(
            input_ids=retain["input_ids"], attention_mask=retain["attention_mask"]
        ).logits
        with torch.no_grad():
            ref_logits = self.reference(
                input_ids=retain["input_ids"], attention_mask=retain["attention_mask"]
            ).logits
        kl = token_kl(ref_logits, logits, retain["labels"])
        nll = mean_nll_of_logits(logits.detach(), retain["labels"])
        return {"retain": self.weight * kl, "retain_nll": nll}


class RetainObjective(Objective):
    """Base of the methods with a retain term (``self.retain``), set up before training.

    The loss is ``forget + retain``; the retain term is a mean over retain answer tokens
    (the NLL's and the KL's alike), the forget term's unit is the method's to declare.
    """

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.retain = RetainTerm(self.options)

    def prepare(self, model: torch.nn.Module, data: PairedDataset, pad_token_id: int) -> None:
        self.retain.prepare(model)

    def with_retain(
        self,
        model: torch.nn.Module,
        batch: ForgetRetainBatch,
        forget: torch.Tensor,
        forget_nll: torch.Tensor,
    ) -> Terms:
        """The terms of a forget loss ``forget`` plus λ·retain on ``batch.retain``; the
        forget set's token-mean NLL ``forget_nll`` is logged."""
        retain = self.retain(model, batch.retain)
        return {
            "loss": forget + retain["retain"],
            "forget": forget,
            "retain": retain["retain"],
            "forget_nll": forget_nll.detach(),
            "retain_nll": retain["retain_nll"],
        }


def token_kl(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(p_ref ‖ p_model) of next-token distributions, mean over labelled positions (fp32).

    Logits are [B, T, V]; positions are those whose next-token label counts (``labelled``).
    The positions are masked, not indexed: boolean indexing would wait for the device to know
    how many there are.
    """
    keep = labelled(labels)  # [B, T-1]
    log_p = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    log_q = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=-1)  # [B, T-1]
    return torch.where(keep, kl, 0.0).sum() / keep.sum().clamp(min=1)


# Each method registers itself when its module is imported: importing them here makes
# ``METHODS`` complete for whoever imports it (they import this module, complete by now).
import wagle.unlearning.methods  # noqa: E402, F401
