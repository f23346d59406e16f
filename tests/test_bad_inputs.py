"""Bad inputs are caught at the door: one line on stderr, exit 2, no traceback, no model loaded.

Each test here is one row of docs/bad-inputs.md. The model loaders are replaced by a function
that fails the test, so a check that only fires after loading a model cannot pass.
"""

from __future__ import annotations

import json
import pickle

import pytest
import torch

import wagle.models
import wagle.validate
from wagle.attribution.masks import save_mask
from wagle.cli import main
from wagle.data.playground import write


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each warning is printed once per process: forget the ones earlier tests printed."""
    monkeypatch.setattr(wagle.validate, "_WARNED", set())


@pytest.fixture
def ws(tmp_path, saved_inputs, monkeypatch):
    """model/, forget.jsonl (8 records), retain.jsonl (8 others); loading a model fails."""
    saved_inputs(n_retain=8)

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(wagle.models, "load_model", no_loading)
    return tmp_path


def attribute(ws, *flags: str, forget: str | None = None, model: str | None = None) -> list:
    return [
        "attribute", "--model", model or str(ws / "model"),
        "--forget", forget or str(ws / "forget.jsonl"), "--retain", str(ws / "retain.jsonl"),
        "--out", str(ws / "mask.safetensors"), "--quiet", *flags,
    ]  # fmt: skip


def unlearn(ws, *flags: str, model: str | None = None, retain: str | None = None) -> list:
    return [
        "unlearn", "--model", model or str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", retain or str(ws / "retain.jsonl"), "--out", str(ws / "out"),
        "--max-steps", "1", "--no-progress", *flags,
    ]  # fmt: skip


def evaluate(ws, data: str, *flags: str) -> list:
    return [
        "evaluate", "--model", str(ws / "model"), "--data", data, "--out", str(ws / "ev"),
        "--max-new-tokens", "2", *flags,
    ]  # fmt: skip


def fails(argv: list, capsys, message: str) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr that contains ``message``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("wagle: error: "), err
    assert message in lines[-1], err
    assert "Traceback" not in err and len([x for x in lines if "error" in x]) == 1
    return lines[-1]


def write_lines(path, *lines: str):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


# ---- models ------------------------------------------------------------------------------


def test_missing_model_directory(ws, capsys):
    fails(attribute(ws, model=str(ws / "nowhere")), capsys, "model not found:")


def test_model_path_is_a_file(ws, capsys):
    fails(attribute(ws, model=str(ws / "forget.jsonl")), capsys, "is a file; give the model's")


def test_model_directory_without_config(ws, capsys):
    (ws / "empty").mkdir()
    fails(attribute(ws, model=str(ws / "empty")), capsys, "has no config.json")


def test_model_directory_without_weights(ws, capsys):
    (ws / "model" / "model.safetensors").unlink()
    fails(unlearn(ws), capsys, "holds no safetensors weights")


def test_model_with_only_pickled_weights_is_refused(ws, capsys):
    (ws / "model" / "model.safetensors").rename(ws / "model" / "pytorch_model.bin")
    line = fails(attribute(ws), capsys, "holds no safetensors weights (only pytorch_model.bin")
    assert "never loads" in line


# ---- launchers ----------------------------------------------------------------------------


def test_an_fsdp1_accelerate_config_is_refused(ws, capsys, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    fails(attribute(ws), capsys, "FSDP1 is not supported (its flat parameters hide which entry")


def test_deepspeed_is_refused_with_the_reason(ws, capsys, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    line = fails(attribute(ws), capsys, "DeepSpeed is not supported: ZeRO keeps gradients")
    assert "use FSDP2" in line


def test_lora_with_fsdp_is_refused(ws, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it (one process: nothing to shard)
    fails(unlearn(ws, "--fsdp", "--lora"), capsys, "lora is not supported with fsdp")


def test_checkpoints_with_fsdp_are_refused(ws, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    fails(unlearn(ws, "--fsdp", "--save-every", "1"), capsys, "save_every / --resume are not")


# ---- data ---------------------------------------------------------------------------------


def test_missing_forget_file(ws, capsys):
    fails(attribute(ws, forget=str(ws / "nope.jsonl")), capsys, "forget data not found:")


def test_missing_retain_file(ws, capsys):
    fails(unlearn(ws, retain=str(ws / "gone" / "retain.jsonl")), capsys, "retain data not found")


def test_malformed_jsonl_names_file_and_line(ws, capsys):
    bad = write_lines(ws / "bad.jsonl", '{"question": "q", "answer": "a"}', '{"question": "q",')
    fails(attribute(ws, forget=bad), capsys, "bad.jsonl: invalid JSON on line 2")


def test_malformed_json_array_names_the_line(ws, capsys):
    bad = write_lines(ws / "bad.json", "[", '  {"question": "q", "answer": "a"},', "  oops", "]")
    fails(attribute(ws, forget=bad), capsys, "bad.json: invalid JSON at line 3")


def test_a_record_that_is_not_an_object(ws, capsys):
    bad = write_lines(ws / "list.jsonl", '{"question": "q", "answer": "a"}', '["q", "a"]')
    fails(attribute(ws, forget=bad), capsys, "record 2 is a list, not an object")


def test_a_record_missing_a_required_field(ws, capsys):
    bad = write_lines(ws / "f.jsonl", '{"question": "q", "answer": "a"}', '{"question": "q2"}')
    fails(attribute(ws, forget=bad), capsys, "record 2 needs field 'answer'")


def test_unlearn_record_missing_a_required_field(ws, capsys):
    write_lines(ws / "retain.jsonl", '{"question": "q", "answer": "a"}', '{"question": "q2"}')
    fails(unlearn(ws), capsys, "retain record 2 needs field 'answer'")


def test_empty_forget_set(ws, capsys):
    empty = write_lines(ws / "empty.jsonl", "")
    fails(attribute(ws, forget=empty), capsys, "holds no records")


def test_nonexistent_split_of_a_directory(ws, capsys):
    (ws / "data").mkdir()
    write_lines(ws / "data" / "forget10.jsonl", '{"question": "q", "answer": "a"}')
    argv = attribute(ws, "--forget-split", "forget99", forget=str(ws / "data"))
    fails(argv, capsys, "no split 'forget99' in")


def test_directory_without_a_split(ws, capsys):
    (ws / "data").mkdir()
    fails(attribute(ws, forget=str(ws / "data")), capsys, "is a directory: name the split")


# ---- options -------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", ["0", "-0.5", "1.5"])
def test_ratio_outside_zero_one(ws, capsys, ratio):
    line = fails(attribute(ws, "--ratio", ratio), capsys, "ratio must be in (0, 1]")
    assert line.endswith(f"got {float(ratio)}")


def test_unknown_score_method(ws, capsys):
    fails(attribute(ws, "--method", "magic"), capsys, "unknown score method 'magic'; choose")


def test_unknown_unlearning_method(ws, capsys):
    fails(unlearn(ws, "--method", "forgetall"), capsys, "unknown unlearning method 'forgetall'")


def test_missing_config_file(ws, capsys):
    fails(unlearn(ws, "--config", str(ws / "recipe.yaml")), capsys, "config file not found")


def test_malformed_yaml_config(ws, capsys):
    bad = write_lines(ws / "recipe.yaml", "method: [npo")
    fails(unlearn(ws, "--config", bad), capsys, "is not valid YAML (line 2): expected ','")


def test_unknown_option_in_a_recipe(ws, capsys):
    bad = write_lines(ws / "recipe.yaml", "learning_rat: 0.1")
    fails(unlearn(ws, "--config", bad), capsys, "unknown option(s) ['learning_rat']")


# ---- masks ---------------------------------------------------------------------------------


def test_missing_mask_file(ws, capsys):
    fails(unlearn(ws, "--mask", str(ws / "none.safetensors")), capsys, "mask file not found")


def test_a_pickle_passed_as_a_mask_is_refused(ws, capsys):
    """The file is never unpickled: pickle.load would run the payload's code."""
    path = ws / "mask.pt"
    path.write_bytes(pickle.dumps({"model.embed_tokens.weight": torch.ones(2, 2)}))
    line = fails(unlearn(ws, "--mask", str(path)), capsys, "is not a safetensors file")
    assert "never pickles" in line


def test_mask_made_for_another_model_shape(ws, capsys):
    save_mask({"model.embed_tokens.weight": torch.ones(7, 3, dtype=torch.bool)}, ws / "m")
    line = fails(unlearn(ws, "--mask", str(ws / "m")), capsys, "was made for another model")
    assert "(7, 3) in the mask" in line


def test_mask_made_for_another_model_names(ws, capsys):
    save_mask({"transformer.h.0.attn.c_attn.weight": torch.ones(2, dtype=torch.bool)}, ws / "m")
    line = fails(unlearn(ws, "--mask", str(ws / "m")), capsys, "was made for another model")
    assert "1 of its 1 tensors are not in" in line


def test_mask_info_on_a_pickle(ws, capsys):
    (ws / "m.bin").write_bytes(pickle.dumps([1, 2, 3]))
    fails(["mask", "info", str(ws / "m.bin")], capsys, "is not a safetensors file")


# ---- outputs -------------------------------------------------------------------------------


def test_unlearn_refuses_to_replace_a_finished_run(ws, capsys):
    (ws / "out").mkdir()
    (ws / "out" / "run_config.json").write_text("{}")
    fails(unlearn(ws), capsys, "already holds a finished run; pass --overwrite")


def test_attribute_refuses_to_replace_a_mask(ws, capsys):
    (ws / "mask.safetensors").write_bytes(b"x")
    fails(attribute(ws), capsys, "mask.safetensors already exists; pass --overwrite")


def test_evaluate_refuses_to_replace_an_eval(ws, capsys, micro_splits):
    (ws / "ev").mkdir()
    (ws / "ev" / "eval.json").write_text("{}")
    fails(evaluate(ws, str(ws)), capsys, "eval.json already exists; pass --overwrite")


# ---- evaluation ------------------------------------------------------------------------------


@pytest.fixture
def playground_dir(ws, micro_splits):
    from wagle.data.playground import write

    write(micro_splits, ws / "data")
    return str(ws / "data")


def test_unknown_benchmark(ws, capsys, playground_dir):
    fails(evaluate(ws, playground_dir, "--benchmark", "nope"), capsys, "unknown benchmark 'nope'")


def test_unknown_forget_split(ws, capsys, playground_dir):
    fails(evaluate(ws, playground_dir, "--split", "forget33"), capsys, "unknown forget split")


def test_missing_reference(ws, capsys, playground_dir):
    argv = evaluate(ws, playground_dir, "--reference", str(ws / "nothing"))
    fails(argv, capsys, "reference evaluation not found")


def test_reference_that_is_not_json(ws, capsys, playground_dir):
    write_lines(ws / "eval.json", "{not json")
    fails(evaluate(ws, playground_dir, "--reference", str(ws)), capsys, "is not valid JSON")


def test_reference_on_other_forget_questions(ws, capsys, playground_dir, micro_splits):
    """Same benchmark and split names, but another forget set: the KS test would be void."""
    questions = [r["question"] for r in micro_splits["forget10"]]
    questions[3] = "Who wrote something else?"
    forget = {"per_sample": {"question": questions}, "aggregates": {}}
    reference = {"benchmark": "playground", "split": "forget10", "sections": {"forget": forget}}
    (ws / "eval.json").write_text(json.dumps(reference))
    line = fails(evaluate(ws, playground_dir, "--reference", str(ws)), capsys, "other forget")
    assert "question 3 differs" in line


# ---- warnings (the run goes on) ---------------------------------------------------------------


def test_forget_retain_overlap_is_a_warning_with_the_count(tmp_path, saved_inputs, capsys):
    saved_inputs(n_retain=8)
    forget = (tmp_path / "forget.jsonl").read_text().splitlines()
    (tmp_path / "retain.jsonl").write_text("\n".join(forget[:3]) + "\n")
    argv = [
        "attribute", "--model", str(tmp_path / "model"), "--forget", str(tmp_path / "forget.jsonl"),
        "--retain", str(tmp_path / "retain.jsonl"), "--out", str(tmp_path / "m.safetensors"),
        "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "wagle: warning: 3 of 8 forget samples also appear in the retain set" in err


def test_sequences_longer_than_max_length_are_counted(tmp_path, saved_inputs, capsys):
    """The 8 forget samples are 58+ tokens, their prompts at most 35: at max_length 40 every
    answer is cut, none to nothing."""
    saved_inputs(n_retain=8)
    argv = [
        "attribute", "--model", str(tmp_path / "model"), "--forget", str(tmp_path / "forget.jsonl"),
        "--retain", str(tmp_path / "retain.jsonl"), "--out", str(tmp_path / "m.safetensors"),
        "--quiet", "--max-length", "40",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "8 of 8 samples are longer than max_length=40 tokens and were truncated" in (
        capsys.readouterr().err
    )


def test_a_missing_path_under_an_existing_directory_is_not_taken_for_a_hub_id(
    ws, capsys, monkeypatch
):
    """``runs/npo-wagle`` looks like ``org/name``, but ``runs/`` is a local directory."""
    monkeypatch.chdir(ws)
    (ws / "runs").mkdir()
    fails(attribute(ws, model="runs/npo-wagle"), capsys, "model not found: runs/npo-wagle")


def test_unlearn_warns_about_forget_samples_in_the_retain_set(tmp_path, saved_inputs, capsys):
    saved_inputs(n_retain=8)
    forget = (tmp_path / "forget.jsonl").read_text().splitlines()
    retain = (tmp_path / "retain.jsonl").read_text().splitlines()
    (tmp_path / "retain.jsonl").write_text("\n".join(retain + forget[:2]) + "\n")
    argv = [
        "unlearn", "--model", str(tmp_path / "model"), "--forget", str(tmp_path / "forget.jsonl"),
        "--retain", str(tmp_path / "retain.jsonl"), "--out", str(tmp_path / "out"),
        "--max-steps", "1", "--batch-size", "2", "--gradient-accumulation-steps", "1",
        "--max-length", "48", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "2 of 8 forget samples also appear in the retain set" in capsys.readouterr().err


# ---- inputs that pass the first checks but would break the run or do nothing (issue 19.11) -


def _cut(path, size: int) -> None:
    """Truncate ``path`` to ``size`` bytes, as an interrupted copy or download leaves it."""
    with open(path, "r+b") as handle:
        handle.truncate(size)


def test_truncated_weights_file(ws, capsys):
    weights = ws / "model" / "model.safetensors"
    _cut(weights, weights.stat().st_size // 2)
    for argv in (attribute(ws), unlearn(ws), evaluate(ws, str(ws / "data"))):
        fails(argv, capsys, "model.safetensors is truncated")


def test_weights_file_cut_inside_its_header(ws, capsys):
    _cut(ws / "model" / "model.safetensors", 100)
    fails(unlearn(ws), capsys, "is truncated: 100 bytes, fewer than its header alone")


def test_empty_weights_file(ws, capsys):
    _cut(ws / "model" / "model.safetensors", 0)
    fails(attribute(ws), capsys, "model.safetensors is empty (0 bytes)")


def test_config_that_is_not_json(ws, capsys):
    write_lines(ws / "model" / "config.json", '{"model_type": "llama",')
    fails(unlearn(ws), capsys, "config.json is not valid JSON (line 2)")


@pytest.mark.parametrize(
    "name", ["generation_config.json", "tokenizer_config.json", "tokenizer.json"]
)
def test_model_json_files_cut_short(ws, capsys, name):
    """Each cut in half. Before: a cut generation config was skipped without a word (its EOS
    ids lost), a cut tokenizer file failed only after the model was loaded."""
    path = ws / "model" / name
    text = path.read_text() if path.is_file() else '{"eos_token_id": [2, 7]}'
    path.write_text(text[: len(text) // 2])
    fails(unlearn(ws), capsys, f"/model: {name} is not valid JSON")


def test_sharded_weights_with_a_missing_shard(ws, capsys):
    index = {"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (ws / "model" / "model.safetensors.index.json").write_text(json.dumps(index))
    fails(attribute(ws), capsys, "names 1 shard(s) that are not there, e.g. model-00002-of")


def test_a_peft_adapter_directory_is_not_a_model(ws, capsys):
    (ws / "adapter").mkdir()
    (ws / "adapter" / "adapter_config.json").write_text("{}")
    fails(attribute(ws, model=str(ws / "adapter")), capsys, "holds a PEFT adapter, not a model")


def test_truncated_mask_file(ws, capsys):
    path = ws / "mask.safetensors"
    shapes = wagle.validate.tensor_shapes(ws / "model" / "model.safetensors")
    save_mask({name: torch.ones(shape, dtype=torch.bool) for name, shape in shapes.items()}, path)
    _cut(path, path.stat().st_size - 10)
    line = fails(unlearn(ws, "--mask", str(path)), capsys, "mask.safetensors is truncated")
    assert line.startswith("wagle: error: mask file ")


def test_weights_that_do_not_cover_the_model(tmp_path, saved_inputs, micro_splits, capsys):
    """Weight names of another model (here: one layer under an adapter's prefix) would leave
    those weights random; the run stops once the model is loaded, before writing anything."""
    from safetensors.torch import load_file, save_file

    saved_inputs()
    write(micro_splits, tmp_path / "data")
    path = tmp_path / "model" / "model.safetensors"
    weights = {("base_model.model." + k if ".layers.1." in k else k): v
               for k, v in load_file(path).items()}  # fmt: skip
    save_file(weights, path, metadata={"format": "pt"})
    fails(evaluate(tmp_path, str(tmp_path / "data")), capsys, "lacks 9 of the model's weights")
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("field", ["question", "answer"])
def test_an_empty_question_or_answer(ws, capsys, field):
    records = [{"question": "q", "answer": "a"}, {"question": "q2", "answer": "a2"}]
    records[1][field] = "  "
    bad = write_lines(ws / "f.jsonl", *map(json.dumps, records))
    fails(attribute(ws, forget=bad), capsys, f"record 2: field {field!r} is empty")
    write_lines(ws / "retain.jsonl", *map(json.dumps, records))
    fails(unlearn(ws), capsys, f"retain record 2: field {field!r} is empty")


def test_an_empty_text(ws, capsys):
    bad = write_lines(ws / "t.jsonl", '{"text": "a text"}', '{"text": ""}')
    fails(attribute(ws, forget=bad), capsys, "record 2: field 'text' is empty")


@pytest.mark.parametrize(
    ("perturbed", "message"),
    [
        ([], "is an empty list"),
        (["", "b"], "holds an empty string"),
        ([1], "holds an item that is not a string"),
    ],
)
def test_evaluation_data_without_usable_perturbed_answers(ws, capsys, perturbed, message):
    (ws / "data").mkdir()
    record = {"question": "q", "answer": "a", "paraphrased_answer": "p"}
    write_lines(
        ws / "data" / "forget10.jsonl", json.dumps(record | {"perturbed_answer": perturbed})
    )
    write_lines(ws / "data" / "holdout.jsonl", json.dumps({"question": "q", "answer": "a"}))
    line = fails(evaluate(ws, str(ws / "data")), capsys, f"field 'perturbed_answer' {message}")
    assert "(forget10): record 1" in line


def test_the_playground_benchmark_on_one_file(ws, capsys):
    """Every section (forget, retain, real world) would read that one file and score it."""
    fails(evaluate(ws, str(ws / "forget.jsonl")), capsys, "reads a directory of split files")


@pytest.mark.parametrize("max_length", ["1", "12"])
def test_max_length_that_leaves_no_answer_token(tmp_path, saved_inputs, capsys, max_length):
    """The prompts alone are longer: before, every sample was cut to its prompt plus one token
    (or nothing), the run trained on no answer and still wrote an "unlearned" model."""
    saved_inputs()
    ws = tmp_path
    for argv in (unlearn(ws, "--max-length", max_length),
                 attribute(ws, "--max-length", max_length)):  # fmt: skip
        line = fails(argv, capsys, f"max_length={max_length} leaves 8 of 8 samples without a")
        assert line.endswith("raise --max-length")
    assert not (ws / "out").exists() and not (ws / "mask.safetensors").exists()


def test_a_ratio_that_selects_no_weight(tmp_path, saved_inputs, capsys):
    """round(ρ·n) = 0: the smallest ratio is selected first, so no mask of the sweep is written."""
    saved_inputs()
    fails(attribute(tmp_path, "--ratio", "0.5", "1e-9"), capsys, "ratio 1e-09 selects no weight")
    assert not list(tmp_path.glob("mask*.safetensors"))


def test_a_mask_that_selects_no_weight(tmp_path, saved_inputs, capsys):
    model = saved_inputs()
    save_mask({n: torch.zeros(p.shape, dtype=torch.bool) for n, p in model.named_parameters()},
              tmp_path / "none.safetensors")  # fmt: skip
    argv = unlearn(tmp_path, "--mask", str(tmp_path / "none.safetensors"))
    fails(argv, capsys, "the mask selects no trainable weight")
    assert not (tmp_path / "out").exists()
