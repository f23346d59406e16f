"""Mask files and mask statistics."""

from __future__ import annotations

import pytest
import torch

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
