"""The hot path of a training step: nothing is read back from the device, nothing of a
parameter's size is allocated by the masking, and SelectiveAdamW's kernel count does not grow
with the number of parameters."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerCallback

from wagle.unlearning import METHODS, MaskedUnlearningTrainer, PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.masking import MaskEnforcer
from wagle.unlearning.run import training_arguments
from wagle.unlearning.selective_adamw import SelectiveAdamW

HOST_READS = ("aten::item", "aten::_local_scalar_dense")
# on an accelerator nonzero waits for the device to learn its output's size (boolean indexing
# calls it); on the CPU, where these tests run, it reads nothing back, so it is named here
SIZE_READS = ("aten::nonzero",)


class TinyLM(torch.nn.Module):
    """A causal LM without attention (embedding, one mixing layer, head): a forward pass that
    itself reads nothing back, so that the trace shows wagle's and the Trainer's reads."""

    def __init__(self, vocab: int = 64, hidden: int = 8) -> None:
        super().__init__()
        self.config = SimpleNamespace(num_hidden_layers=1, hidden_size=hidden)  # for RMU
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.mix = torch.nn.Linear(hidden, hidden)
        self.head = torch.nn.Linear(hidden, vocab, bias=False)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False, **kwargs):
        states = [self.embed(input_ids)]
        states.append(torch.tanh(self.mix(states[0])))  # the one layer's output
        hidden = tuple(states) if output_hidden_states else None
        return SimpleNamespace(logits=self.head(states[1]), hidden_states=hidden)


class _ProfileStep(TrainerCallback):
    """Profiles optimizer step ``which`` whole: from its start to the start of the next."""

    def __init__(self, which: int = 2, with_stack: bool = False) -> None:
        self.which, self.events, self._profile = which, [], None
        self.with_stack = with_stack  # Python frames as parents (slow)

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.which:  # step `which` + 1 begins: step `which` is done
            self._profile.__exit__(None, None, None)
            self.events = list(self._profile.events())
        if state.global_step == self.which - 1:
            self._profile = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU], with_stack=self.with_stack
            )
            self._profile.__enter__()


def _examples(n: int, vocab: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(6, 12, (n,), generator=generator).tolist()  # padding in batches
    rows = [torch.randint(3, vocab, (k,), generator=generator).tolist() for k in lengths]
    return [{"input_ids": r, "labels": [-100] * 3 + r[3:]} for r in rows]


def _trace(model, method: str, state: str, optimizer: str, tmp_path, stack=False) -> list:
    """The profiler events of the 2nd of 4 optimizer steps (2 micro-batches each) of a masked
    run (a random mask of ~30%)."""
    generator = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.3 for n, p in model.named_parameters()}
    vocab = model.get_input_embeddings().num_embeddings
    data = PairedDataset(_examples(16, vocab, 1), _examples(16, vocab, 2))
    config = UnlearnConfig(
        model="-", forget="-", retain="-", out="-", method=method, max_steps=4, batch_size=2,
        gradient_accumulation_steps=2, learning_rate=1e-3, warmup=1, weight_decay=0.1,
        max_grad_norm=1.0, progress=False, optimizer=optimizer,
    )  # fmt: skip
    profile = _ProfileStep(with_stack=stack)
    objective = METHODS[method]()
    if method == "idkdpo":  # its refusals, as ``encode`` would leave them
        objective.refusals = _examples(16, vocab, 3)
    trainer = MaskedUnlearningTrainer(
        model=model, args=training_arguments(config, str(tmp_path)), train_dataset=data,
        data_collator=PairCollator(0, objective.companions()), objective=objective, mask=mask,
        optimizer_state=state,
        callbacks=[profile],
    )  # fmt: skip
    objective.prepare(model, data, 0)
    trainer.train()
    assert profile.events, "the step was not profiled"
    return profile.events


def _callers(event) -> list[str]:
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return names


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_training_step_reads_nothing_back_from_the_device(method, tmp_path):
    """Selective AdamW state, every method, fp32: no ``aten::item`` (nor the
    ``_local_scalar_dense`` it calls) nor ``aten::nonzero`` in a whole step — forward and
    backward of both micro-batches, the step's token counts, the masking, clipping, the
    optimizer, the step log. (Before: 12 per step, five floats and a finiteness check per
    micro-batch; then CE-U, UNDIAL, WGA and SatImp indexed their answer tokens, 4 to 16
    nonzero or item per step, and IdkDPO read the forget indices back to collate refusals.)"""
    torch.manual_seed(0)
    events = _trace(TinyLM(), method, "selected", "adamw_torch", tmp_path)
    names = Counter(e.name for e in events)
    assert names["aten::mm"] > 0  # the trace holds the step's work
    assert [e.name for e in events if e.name in HOST_READS + SIZE_READS] == []


def test_dense_state_reads_back_only_inside_torchs_fused_adamw_on_cpu(tmp_path):
    """Dense AdamW state with the masked decay and gradient zeroing: the only host reads are
    the CPU fused AdamW kernel's reads of its step counters (on a GPU they stay on the
    device), none from wagle or the Trainer."""
    torch.manual_seed(0)
    events = _trace(TinyLM(), "graddiff", "full", "adamw_torch_fused", tmp_path)
    reads = [e for e in events if e.name in HOST_READS]
    assert all("aten::_fused_adamw_" in _callers(e) for e in reads)


def test_a_llama_step_reads_back_only_in_transformers_mask_preparation(tiny_model, tmp_path):
    """A real Llama: transformers reads the padding mask back in each forward pass to choose
    its attention kernel (``masking_utils``, outside wagle); those are the only host reads
    of a step."""
    events = _trace(tiny_model(seed=0), "graddiff", "selected", "adamw_torch", tmp_path, True)
    reads = [e for e in events if e.name in HOST_READS]
    assert reads and all(any("masking_utils" in c for c in _callers(e)) for e in reads)


def test_masking_allocates_nothing_of_a_parameters_size_per_step(random_mask, tiny_model):
    """Zeroing the unselected gradient entries and the masked weight decay, after the first
    step (which makes their scratch buffers): no allocation beyond the 8-byte scalars
    PyTorch wraps Python numbers in (before: the mask's complement, n bytes, and an fp32
    factor, 4n bytes, per partly selected parameter; the smallest here has n = 16)."""
    model = tiny_model(seed=0)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    enforcer = MaskEnforcer(model, random_mask(model))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    enforcer.make_weight_decay_mask_aware(optimizer)
    enforcer.zero_unselected_grads()  # the scratch buffers are made here
    optimizer.step()
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as profile:
        enforcer.zero_unselected_grads()
        for hook in optimizer._optimizer_step_pre_hooks.values():
            hook(optimizer, (), {})
    events = profile.events()
    assert {"aten::bitwise_and_", "aten::mul_"} <= {e.name for e in events}
    assert max(e.cpu_memory_usage for e in events) <= 8
    assert not {e.name for e in events} & {"aten::bitwise_not", "aten::logical_not"}


def test_selective_adamw_runs_the_same_kernels_for_3_or_30_parameters():
    """The update runs once per flat bucket (one ``lerp_``, one ``addcdiv_``), not once per
    parameter; per parameter only its gather and scatter remain."""

    def kernels(n_params: int) -> Counter:
        params = [torch.nn.Parameter(torch.randn(40, 10)) for _ in range(n_params)]
        generator = torch.Generator().manual_seed(0)
        selected = {id(p): torch.rand(p.shape, generator=generator) < 0.3 for p in params}
        optimizer = SelectiveAdamW(params, selected, lr=1e-3)
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer.step()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            optimizer.step()
        return Counter(e.name for e in profile.events())

    few, many = kernels(3), kernels(30)
    for name in ("aten::lerp_", "aten::addcdiv_", "aten::sqrt", "aten::addcmul_"):
        assert few[name] == many[name] == 1, name
    assert many["aten::index_select"] == 60 and many["aten::index_copy_"] == 30


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_zeroing_on_cpu_gives_where_s_result_bit_for_bit(dtype):
    """The CPU path (bitwise AND with the widened mask, in chunks) and the accelerator path
    (``torch.where``) agree bit for bit, inf and NaN outside the mask included (→ +0.0)."""
    import wagle.unlearning.masking as masking

    generator = torch.Generator().manual_seed(0)
    grad = torch.randn(1000, generator=generator).to(dtype)
    grad[:6] = torch.tensor([float("inf"), float("-inf"), float("nan"), -0.0, 1.0, -2.0])
    selected = torch.rand(1000, generator=generator) < 0.5
    selected[:4] = False
    expected = torch.where(selected, grad, torch.zeros((), dtype=dtype))
    zeroed = grad.clone()
    chunk, masking.CHUNK = masking.CHUNK, 64  # several chunks
    try:
        masking.zero_unselected(zeroed, selected, {})
    finally:
        masking.CHUNK = chunk
    int_type = torch.int32 if dtype == torch.float32 else torch.int16
    assert torch.equal(zeroed.view(int_type), expected.view(int_type))
    assert zeroed[:4].view(int_type).eq(0).all()  # +0.0, not −0.0 nor NaN


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_masked_decay_from_bit_patterns_equals_the_fp32_factor_bit_for_bit(dtype):
    """The decay factor built in int32 from the bit patterns of 1.0 and 1 − rate gives the
    weights that the factor built in fp32 (s → 1.0/0.0, ·(−rate), +1) gives, bit for bit, for
    rates from 0 to 0.5 (warm-up starts at lr 0), in several chunks; unselected entries
    (f = 1.0 exactly) keep their bits, −0.0 included."""
    import wagle.unlearning.masking as masking

    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(1000, generator=generator).to(dtype)
    weights[:2] = torch.tensor([-0.0, 0.0])
    selected = torch.rand(1000, generator=generator) < 0.5
    selected[:2] = False
    int_type = torch.int32 if dtype == torch.float32 else torch.int16
    for rate in (0.0, 1e-12, 3e-9, 1e-7, 1e-5 * 0.01, 1e-3, 0.1, 0.5):
        factor = selected.float().mul_(-rate).add_(1.0)
        expected = (weights.float() * factor).to(dtype)
        decayed = weights.clone()
        scratch = torch.empty(2, 64)  # 16 chunks
        masking.decay_selected(decayed, selected, masking.factor_bits(rate, "cpu"), scratch)
        assert torch.equal(decayed.view(int_type), expected.view(int_type)), rate
        assert torch.equal(decayed[~selected].view(int_type), weights[~selected].view(int_type))
