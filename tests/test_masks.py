"""Mask files and mask statistics."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from wagle import __version__
from wagle.attribution.masks import (
    check_mask,
    compare_masks,
    complete_mask,
    density,
    layer_of,
    load_mask,
    mask_metadata,
    module_type,
    open_mask,
    save_mask,
)
from wagle.errors import WagleError


def half_mask(model) -> dict[str, torch.Tensor]:
    """Every other weight of every parameter (flat order)."""
    return {n: (torch.arange(p.numel()) % 2 == 0).view_as(p) for n, p in model.named_parameters()}


def test_a_mask_round_trips_through_a_file_bit_for_bit(tiny_model, tmp_path):
    model = tiny_model()
    mask = half_mask(model)
    save_mask(mask, tmp_path / "m.safetensors", {"method": "wagle", "ratio": 0.5, "gamma": 1e-6})
    loaded = load_mask(tmp_path / "m.safetensors", model)
    assert list(loaded) == list(mask)
    assert all(loaded[n].dtype == torch.bool and torch.equal(loaded[n], mask[n]) for n in mask)
    meta = mask_metadata(tmp_path / "m.safetensors")
    assert meta == {"wagle_version": __version__, "method": "wagle", "ratio": 0.5, "gamma": 1e-6}


def test_a_mask_for_another_model_is_a_one_line_error(tiny_model, tmp_path):
    save_mask(half_mask(tiny_model()), tmp_path / "m.safetensors")
    tied = tiny_model(tie_word_embeddings=True)  # has no separate lm_head.weight
    with pytest.raises(WagleError, match=r"1 name\(s\) not in the model, e.g. 'lm_head.weight'"):
        load_mask(tmp_path / "m.safetensors", tied)


def test_a_mask_whose_shapes_differ_is_an_error_naming_the_parameter(tiny_model):
    model = tiny_model()
    mask = half_mask(model) | {"model.norm.weight": torch.ones(3, dtype=torch.bool)}
    with pytest.raises(WagleError, match=r"model.norm.weight is \(3,\) in the mask but \(16,\)"):
        check_mask(mask, model)


def test_a_file_that_is_not_a_mask_is_an_error(tmp_path):
    (tmp_path / "x.safetensors").write_text("not a mask")
    with pytest.raises(WagleError, match="is not a safetensors file"):
        load_mask(tmp_path / "x.safetensors")


def test_complete_mask_adds_unselected_parameters(tiny_model):
    model = tiny_model()
    full = complete_mask({"model.norm.weight": torch.ones(16, dtype=torch.bool)}, model)
    assert list(full) == [n for n, _ in model.named_parameters()]
    assert sum(int(m.sum()) for m in full.values()) == 16


def test_parameter_names_group_by_layer_and_module_type():
    name = "model.layers.12.self_attn.q_proj.weight"
    assert (layer_of(name), module_type(name)) == ("12", "q_proj")
    assert (layer_of("model.embed_tokens.weight"), module_type("lm_head.weight")) == (
        "other",
        "lm_head",
    )


def test_density_counts_selected_and_total_weights_per_group():
    """layer 0: 2 of 4 + 1 of 2 = 3 of 6; other: 0 of 3."""
    mask = {
        "model.layers.0.mlp.up_proj.weight": torch.tensor([[1, 0], [1, 0]]).bool(),
        "model.layers.0.input_layernorm.weight": torch.tensor([1, 0]).bool(),
        "model.norm.weight": torch.zeros(3, dtype=torch.bool),
    }
    assert density(mask, layer_of) == {"0": (3, 6), "other": (0, 3)}
    assert density(mask) == {"all": (3, 9)}


def test_compare_gives_jaccard_and_overlap():
    """A = {0, 1, 2}, B = {1, 2, 3, 4}: ∩ = 2, ∪ = 5 → Jaccard 0.4, overlap 2/3."""
    a = {"w": torch.tensor([1, 1, 1, 0, 0, 0]).bool()}
    b = {"w": torch.tensor([0, 1, 1, 1, 1, 0]).bool()}
    result = compare_masks(a, b)["all"]
    assert (result["a"], result["b"], result["both"]) == (3, 4, 2)
    assert result["jaccard"] == pytest.approx(0.4)
    assert result["overlap"] == pytest.approx(2 / 3)


def test_comparing_masks_of_different_models_is_an_error():
    with pytest.raises(WagleError, match="different parameters"):
        compare_masks({"w": torch.ones(2).bool()}, {"v": torch.ones(2).bool()})


# ---- packed files ---------------------------------------------------------------------------


def test_each_tensor_is_packed_as_bits_or_indices_whichever_is_smaller(tmp_path):
    """n = 1000 per tensor: bits take 125 bytes; indices 4 per selected weight, smaller below
    31 selected (density < 1/32). An unselected tensor takes 0 bytes."""
    n = 1000
    mask = {
        "half": torch.arange(n) % 2 == 0,  # 500 selected → bits (125 B)
        "sparse": torch.isin(torch.arange(n), torch.tensor([3, 500, 999])),  # 3 → indices (12 B)
        "none": torch.zeros(n, dtype=torch.bool),  # → indices (0 B)
        "all": torch.ones(4, 250, dtype=torch.bool),  # → bits (125 B)
        "edge": torch.arange(n) < 31,  # 31·4 = 124 < 125 → indices
    }
    save_mask(mask, tmp_path / "m.safetensors")
    handle = open_mask(tmp_path / "m.safetensors")
    assert handle.encodings == {
        "half": "bits", "sparse": "indices", "none": "indices", "all": "bits", "edge": "indices",
    }  # fmt: skip
    assert handle.shapes["all"] == (4, 250)
    for name, selected in mask.items():
        assert torch.equal(handle[name], selected), name
    data_bytes = 125 + 12 + 0 + 125 + 124
    header = (tmp_path / "m.safetensors").stat().st_size - data_bytes
    assert 0 < header < 1000


def test_a_random_mask_round_trips_exactly_at_every_density(tmp_path):
    generator = torch.Generator().manual_seed(0)
    for rho in (0.0, 0.001, 0.03, 0.2, 0.5, 0.97, 1.0):
        mask = {"w": torch.rand(37, 53, generator=generator) < rho}  # 1961: not a multiple of 8
        save_mask(mask, tmp_path / "m.safetensors")
        assert torch.equal(load_mask(tmp_path / "m.safetensors")["w"], mask["w"]), rho


def test_a_file_of_the_first_format_still_loads(tiny_model, tmp_path):
    """The first format: one uint8 tensor per parameter in its own shape, metadata as JSON."""
    model = tiny_model()
    mask = half_mask(model)
    tensors = {n: s.to(torch.uint8) for n, s in mask.items()}
    save_file(tensors, tmp_path / "old.safetensors", metadata={"ratio": "0.5"})
    loaded = load_mask(tmp_path / "old.safetensors", model)
    assert all(torch.equal(loaded[n], mask[n]) for n in mask)
    assert mask_metadata(tmp_path / "old.safetensors") == {"ratio": 0.5}


def test_a_mask_file_is_checked_against_the_model_from_its_header_alone(tiny_model, tmp_path):
    """The shapes come from the header: a mismatch is found before any tensor is unpacked."""
    model = tiny_model()
    save_mask({"model.norm.weight": torch.ones(3, dtype=torch.bool)}, tmp_path / "m.safetensors")
    handle = open_mask(tmp_path / "m.safetensors")
    assert handle.shapes == {"model.norm.weight": (3,)}
    with pytest.raises(WagleError, match=r"model.norm.weight is \(3,\) in the mask but \(16,\)"):
        load_mask(tmp_path / "m.safetensors", model)


def test_a_pickle_passed_as_a_mask_is_refused(tiny_model, tmp_path):
    torch.save(half_mask(tiny_model()), tmp_path / "mask.pt")
    with pytest.raises(WagleError, match="is not a safetensors file"):
        load_mask(tmp_path / "mask.pt")
