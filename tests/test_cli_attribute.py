"""``wagle attribute`` and ``wagle mask info|compare``, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import wagle.attribution.pipeline as pipeline
from wagle import config as cfg
from wagle.attribution import AttributionConfig, load_mask, mask_metadata
from wagle.cli import main


@pytest.fixture
def files(tmp_path, tiny_model, tokenizer, micro_splits):
    """A saved tiny model and forget / retain JSONL files."""
    model_dir = tmp_path / "model"
    tiny_model().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    paths = {"model": model_dir}
    for name, records in (
        ("forget", micro_splits["forget10"][:5]),
        ("retain", micro_splits["retain90"][:10]),
    ):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in records))
    return paths


def run(files, *options: str) -> int:
    common = ["--model", str(files["model"]), "--forget", str(files["forget"])]
    return main(["attribute", *common, "--retain", str(files["retain"]), "--quiet", *options])


def test_attribute_writes_a_mask_with_its_provenance(files, tmp_path, capsys):
    out = tmp_path / "mask.safetensors"
    assert run(files, "--ratio", "0.8", "--out", str(out)) == 0
    assert "wrote" in capsys.readouterr().out
    meta = mask_metadata(out)
    assert {k: meta[k] for k in ("method", "ratio", "gamma", "n_forget", "n_retain")} == {
        "method": "wagle",
        "ratio": 0.8,
        "gamma": 1e-6,
        "n_forget": 5,
        "n_retain": 5,
    }
    assert len(meta["model_fingerprint"]) == len(meta["forget_fingerprint"]) == 16
    mask = load_mask(out)
    assert sum(int(m.sum()) for m in mask.values()) == round(0.8 * meta["n_eligible"])


def test_attribute_prints_density_per_layer_and_module_type(files, tmp_path, capsys):
    common = ["--model", str(files["model"]), "--forget", str(files["forget"])]
    out = str(tmp_path / "m.safetensors")
    assert main(["attribute", *common, "--method", "magnitude", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "layer" in text and "module" in text and "q_proj" in text and "density" in text


def test_a_sweep_writes_one_mask_per_ratio_and_gamma_from_one_attribution(
    files, tmp_path, monkeypatch
):
    calls = []
    real = pipeline.attribute
    monkeypatch.setattr(pipeline, "attribute", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = tmp_path / "sweep" / "wagle.safetensors"
    options = ["--ratio", "0.5", "0.9", "--gamma", "1e-6", "100", "--out", str(out)]
    assert run(files, *options) == 0
    assert calls == [1]
    names = {p.name for p in out.parent.iterdir()}
    assert names == {
        f"wagle-ratio{r}-gamma{g}.safetensors" for r in ("0.5", "0.9") for g in ("1e-06", "100")
    }


def test_mask_info_prints_metadata_and_density(files, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    run(files, "--method", "snip", "--ratio", "0.5", "--out", str(out))
    capsys.readouterr()
    assert main(["mask", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert '"snip"' in text and "0.5000" in text and "lm_head" in text


def test_mask_compare_reports_jaccard_overall_and_per_layer(files, tmp_path, capsys):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    run(files, "--method", "random", "--ratio", "0.5", "--out", str(a))
    run(files, "--method", "random", "--ratio", "0.5", "--out", str(b))
    capsys.readouterr()
    assert main(["mask", "compare", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "Jaccard" in line)
    overall = lines[lines.index(header) + 1].split()
    assert overall[0] == "all" and overall[-2:] == ["1.0000", "1.0000"]  # same seed, same mask
    assert any(line.startswith("layer ") for line in lines)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ratio", "0"], "ratio must be in (0, 1]"),
        (["--ratio", "1.5"], "ratio must be in (0, 1]"),
        (["--method", "fisher"], "unknown score method 'fisher'"),
    ],
)
def test_bad_options_are_one_line_errors(files, tmp_path, capsys, options, message):
    assert run(files, *options, "--out", str(tmp_path / "m.safetensors")) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_an_empty_forget_file_is_a_one_line_error(files, tmp_path, capsys):
    files["forget"].write_text("")
    assert run(files, "--out", str(tmp_path / "m.safetensors")) == 2
    err = capsys.readouterr().err
    assert "holds no records" in err and err.count("\n") == 1


def test_wagle_without_retain_file_is_an_error(files, tmp_path, capsys):
    argv = ["attribute", "--model", str(files["model"]), "--forget", str(files["forget"])]
    assert main([*argv, "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "needs --retain" in capsys.readouterr().err


def test_a_missing_model_is_an_error(files, tmp_path, capsys):
    files["model"] = tmp_path / "nowhere"
    assert run(files, "--out", str(tmp_path / "m.safetensors")) == 2
    assert "model not found" in capsys.readouterr().err


def test_a_yaml_config_sets_options_and_flags_override_it(files, tmp_path):
    (tmp_path / "attr.yaml").write_text("method: magnitude\nratio: 0.6\neligible: linear\n")
    out = tmp_path / "m.safetensors"
    assert (
        run(files, "--config", str(tmp_path / "attr.yaml"), "--ratio", "0.3", "--out", str(out))
        == 0
    )
    meta = mask_metadata(out)
    assert (meta["method"], meta["ratio"], meta["eligible"]) == ("magnitude", 0.3, "linear")


def test_data_can_be_a_directory_of_splits(files, tmp_path):
    """The playground and local TOFU copies are directories of <split>.jsonl files."""
    data = tmp_path / "data"
    data.mkdir()
    files["forget"].rename(data / "forget10.jsonl")
    files["retain"].rename(data / "retain90.jsonl")
    out = tmp_path / "m.safetensors"
    argv = ["attribute", "--model", str(files["model"]), "--quiet", "--out", str(out)]
    argv += ["--forget", str(data), "--forget-split", "forget10"]
    assert main([*argv, "--retain", str(data), "--retain-split", "retain90"]) == 0
    meta = mask_metadata(out)
    assert (meta["n_forget"], meta["forget_split"]) == (5, "forget10")
    assert meta["retain_fingerprint"] is not None


@pytest.mark.parametrize("name", ["attribute_tofu.yaml", "attribute_playground.yaml"])
def test_the_shipped_attribution_configs_are_valid(name):
    path = Path(__file__).parents[1] / "configs" / name
    assert cfg.build(AttributionConfig, cfg.load_yaml(path)).gamma[0] == 1e-6
