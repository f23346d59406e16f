"""``wagle patch`` and ``wagle unlearn --save`` end to end, in process, on tiny saved models;
the bad inputs of docs/bad-inputs.md (rows P1–P10): one line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from test_bad_inputs import fails
from wagle.attribution.masks import load_mask, save_mask
from wagle.cli import main
from wagle.patches import ModelFiles, create_patch, model_tensors, open_patch
from wagle.patches.bits import bits


def same_weights(a, b) -> bool:
    a, b = ModelFiles(a), ModelFiles(b)
    return set(a) == set(b) and all(torch.equal(bits(a[n]), bits(b[n])) for n in a)


@pytest.fixture
def ws(tmp_path, saved_inputs):
    """model/ (tiny Llama, seed 0), forget/retain JSONL, a random half mask, other/ (seed 1)."""
    model = saved_inputs(n_retain=8)
    generator = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}
    save_mask(mask, tmp_path / "mask.safetensors", {"score": "random", "ratio": 0.5})
    return tmp_path


def unlearn(ws, out: str, *flags: str) -> list[str]:
    return [
        "unlearn", "--model", str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", str(ws / "retain.jsonl"), "--out", str(ws / out), "--max-steps", "2",
        "--batch-size", "2", "--gradient-accumulation-steps", "2", "--learning-rate", "1e-2",
        "--max-length", "48", "--no-progress", "--mask", str(ws / "mask.safetensors"), *flags,
    ]  # fmt: skip


@pytest.fixture
def patched(ws, tiny_model):
    """p.safetensors: up_proj[0, :3] of model/ + 1; other/ is a model of another seed."""
    base, new = tiny_model(seed=0), tiny_model(seed=0)
    with torch.no_grad():
        model_tensors(new)["model.layers.0.mlp.up_proj.weight"][0, :3] += 1.0
    create_patch(model_tensors(base), model_tensors(new), ws / "p.safetensors", {"method": "hand"})
    tiny_model(seed=1).save_pretrained(ws / "other")
    return ws


def test_unlearn_save_patch_writes_no_second_model_and_applies_to_the_same_weights(ws):
    """--save patch (same seed as --save model): the output holds the patch, no weights;
    applied to the base it gives the --save model run's weights bit for bit."""
    assert main(unlearn(ws, "full")) == 0
    assert main(unlearn(ws, "patch-only", "--save", "patch")) == 0
    assert {p.name for p in (ws / "patch-only").iterdir()} >= {
        "patch.safetensors",
        "run_config.json",
    }
    assert not (ws / "patch-only" / "model.safetensors").exists()
    assert not (ws / "patch-only" / "config.json").exists()
    args = ["--model", str(ws / "model"), "--patch", str(ws / "patch-only" / "patch.safetensors")]
    assert main(["patch", "apply", *args, "--out", str(ws / "applied")]) == 0
    assert same_weights(ws / "applied", ws / "full")


def test_patch_create_from_a_run_directory_records_the_run(ws):
    """``patch create`` on a --save model run finds what --save both records in the run's own
    patch: method, ratio, mask hash, recipe hash (output settings are not part of the recipe),
    and the same entries."""
    assert main(unlearn(ws, "run", "--save", "both")) == 0
    created = ws / "created.safetensors"
    argv = ["patch", "create", "--base", str(ws / "model"), "--unlearned", str(ws / "run")]
    assert main([*argv, "--out", str(created)]) == 0
    ours, theirs = open_patch(created), open_patch(ws / "run" / "patch.safetensors")
    from wagle.patches import mask_hash

    for key in ("method", "ratio", "mask_sha256", "recipe_hash", "base", "result", "entries"):
        assert ours.metadata[key] == theirs.metadata[key], key
    assert ours.metadata["mask_sha256"] == mask_hash(load_mask(ws / "mask.safetensors"))
    assert (ours.metadata["method"], ours.metadata["ratio"]) == ("npo", 0.5)


def test_apply_then_revert_on_the_command_line(patched, capsys):
    ws = patched
    argv = ["--patch", str(ws / "p.safetensors")]
    assert (
        main(["patch", "apply", "--model", str(ws / "model"), *argv, "--out", str(ws / "a")]) == 0
    )
    assert "3 entries in 1 tensors" in capsys.readouterr().out
    assert not same_weights(ws / "a", ws / "model")
    assert main(["patch", "revert", "--model", str(ws / "a"), *argv, "--out", str(ws / "b")]) == 0
    assert same_weights(ws / "b", ws / "model")


def test_info_prints_totals_metadata_and_layers(patched, capsys):
    """3 fp32 entries of 12 bytes in layer 0 (2,592 weights); the tiny model has 18,000
    weights (72,000 bytes)."""
    assert main(["patch", "info", str(patched / "p.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "3 changed weights of 18,000 (0.02%) in 1 of 21 tensors" in out
    assert 'method:          "hand"' in out
    assert "\n0            3    2,592   0.0012     36\n" in out
    assert main(["patch", "info", str(patched / "p.safetensors"), "--json"]) == 0
    assert '"entries": 3' in capsys.readouterr().out


def test_compose_on_the_command_line(patched, tiny_model):
    ws = patched
    m1 = tiny_model(seed=0)
    with torch.no_grad():
        model_tensors(m1)["model.layers.0.mlp.up_proj.weight"][0, :3] += 1.0
    m2 = tiny_model(seed=0)
    m2.load_state_dict(m1.state_dict())
    with torch.no_grad():
        model_tensors(m2)["model.norm.weight"][:2] = 0.0
    create_patch(model_tensors(m1), model_tensors(m2), ws / "p2.safetensors")
    out = ws / "p12.safetensors"
    assert (
        main(
            [
                "patch",
                "compose",
                str(ws / "p.safetensors"),
                str(ws / "p2.safetensors"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert open_patch(out).entries == {
        "model.layers.0.mlp.up_proj.weight": 3,
        "model.norm.weight": 2,
    }


# ---- bad inputs (docs/bad-inputs.md, rows P1–P10) ---------------------------------------------


def test_patch_apply_to_a_model_with_other_values(patched, capsys):
    ws = patched
    line = fails(
        [
            "patch",
            "apply",
            "--model",
            str(ws / "other"),
            "--patch",
            str(ws / "p.safetensors"),
            "--out",
            str(ws / "o"),
        ],
        capsys,
        "does not match the patch's base: model.layers.0.mlp.up_proj.weight holds other values at 3 of its 3 patched entries (is it the model the patch was made from?)",
    )
    assert line.startswith(f"wagle: error: model {ws / 'other'}")
    assert not (ws / "o").exists()


def test_patch_apply_to_a_model_of_other_shapes(patched, tiny_model, capsys):
    ws = patched
    wide = tiny_model(seed=0)
    wide.resize_token_embeddings(500)
    wide.save_pretrained(ws / "wide")
    fails(
        [
            "patch",
            "apply",
            "--model",
            str(ws / "wide"),
            "--patch",
            str(ws / "p.safetensors"),
            "--out",
            str(ws / "o"),
        ],
        capsys,
        "does not match the patch's base: lm_head.weight is (500, 16) F32 there but (400, 16) F32 in the patch's base",
    )
    assert not (ws / "o").exists()


def test_patch_revert_on_a_model_it_was_not_applied_to(patched, capsys):
    ws = patched
    fails(
        [
            "patch",
            "revert",
            "--model",
            str(ws / "model"),
            "--patch",
            str(ws / "p.safetensors"),
            "--out",
            str(ws / "o"),
        ],
        capsys,
        "does not match the patch's result: model.layers.0.mlp.up_proj.weight holds other values at 3 of its 3 patched entries (it holds the base's values: the patch is not applied to it)",
    )
    assert not (ws / "o").exists()


def test_a_mask_passed_as_a_patch(patched, capsys):
    fails(
        ["patch", "info", str(patched / "mask.safetensors")],
        capsys,
        "mask.safetensors is not a wagle patch (no wagle_patch_format in its metadata)",
    )


def test_a_missing_patch_file(patched, capsys):
    fails(["patch", "info", str(patched / "nope.safetensors")], capsys, "patch file not found: ")


def test_patch_output_that_exists(patched, capsys):
    ws = patched
    (ws / "o").mkdir()
    (ws / "o" / "keep.txt").write_text("mine")
    fails(
        [
            "patch",
            "apply",
            "--model",
            str(ws / "model"),
            "--patch",
            str(ws / "p.safetensors"),
            "--out",
            str(ws / "o"),
        ],
        capsys,
        "/o already exists; pass --overwrite to replace it",
    )
    assert (ws / "o" / "keep.txt").read_text() == "mine"


def test_compose_of_patches_that_do_not_chain(patched, capsys):
    ws = patched
    fails(
        [
            "patch",
            "compose",
            str(ws / "p.safetensors"),
            str(ws / "p.safetensors"),
            "--out",
            str(ws / "pp.safetensors"),
        ],
        capsys,
        "was not made on top of",
    )
    assert not (ws / "pp.safetensors").exists()


def test_patch_create_from_models_of_other_shapes(patched, tiny_model, capsys):
    ws = patched
    wide = tiny_model(seed=0)
    wide.resize_token_embeddings(500)
    wide.save_pretrained(ws / "wide")
    fails(
        [
            "patch",
            "create",
            "--base",
            str(ws / "model"),
            "--unlearned",
            str(ws / "wide"),
            "--out",
            str(ws / "c.safetensors"),
        ],
        capsys,
        "does not match the base model: lm_head.weight is (500, 16) F32 there but (400, 16) F32 in the base model",
    )


def test_unlearn_save_patch_with_another_dtype_than_the_base(ws, capsys):
    err_line = fails(
        unlearn(ws, "o", "--save", "patch", "--dtype", "bfloat16", "--optimizer-state", "selected"),
        capsys,
        "stores",
    )
    assert "as F32 but the run trains bfloat16 weights (--dtype)" in err_line
    assert "unlearn with --dtype float32 or --save model" in err_line


def test_unlearn_save_an_unknown_choice(ws, capsys):
    fails(
        unlearn(ws, "o", "--save", "everything"),
        capsys,
        "save must be one of model, patch, both, got 'everything'",
    )


LIGHT = [
    ["patch", "--help"],
    ["patch", "apply", "--help"],
    ["patch", "info", "/nonexistent/p.safetensors"],
    ["patch", "apply", "--model", "/nonexistent/m", "--patch", "/nonexistent/p", "--out", "o"],
    ["unlearn", "--save", "everything"],
]


@pytest.mark.parametrize("argv", LIGHT, ids=" ".join)
def test_help_and_input_errors_do_not_import_torch(argv, tmp_path):
    code = (
        "import sys\nfrom wagle.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
    if "--help" not in argv:
        assert done.stderr.startswith("wagle: error: ")
