"""Sequential forget requests on a hand-written tiny study (tests/tiny_study.py's authors):
three nested forget splits → three disjoint requests, each with its own attribution, mask and
patch; every earlier set scored against the retain model of the cumulative split."""

from __future__ import annotations

import json

import pytest
import yaml

import tiny_study as tiny
from wagle.errors import WagleError
from wagle.evaluation import stats
from wagle.experiment.recipe import load_recipe
from wagle.experiment.requests import request_sets, set_figures
from wagle.experiment.sequential import run_sequential, sequential_section

TRAINABLE = tiny.FORGET + tiny.RETAIN  # 10 authors; forget01 ⊂ forget05 ⊂ forget10 among them
NESTED = {"forget01": tiny.AUTHORS[:1], "forget05": tiny.AUTHORS[:2], "forget10": tiny.AUTHORS[:4]}
RETAIN_OF = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}


def write_nested_data(directory):
    """TOFU's local layout with nested forget splits, their complements and holdouts."""
    world = tiny.real_world_records()
    splits = {
        "retain_perturbed": tiny.author_records(tiny.RETAIN),
        "real_authors_perturbed": world["real_authors"],
        "world_facts_perturbed": world["world_facts"],
    }
    for split, authors in NESTED.items():
        forget = tiny.author_records(authors)
        splits |= {split: forget, f"{split}_perturbed": forget}
        splits[RETAIN_OF[split]] = tiny.author_records([a for a in TRAINABLE if a not in authors])
        splits[f"holdout{split[-2:]}"] = tiny.author_records(tiny.HOLDOUT)
    directory.mkdir(parents=True)
    for name, records in splits.items():
        (directory / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return splits


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The target (seed 0, every trainable author and the real-world sets), a retain model per
    forget split (seeds 1–3, without that split), the recipe; the study run once."""
    root = tmp_path_factory.mktemp("sequential")
    splits = write_nested_data(root / "data")
    tokenizer = tiny.make_tokenizer()
    world = splits["real_authors_perturbed"] + splits["world_facts_perturbed"]
    tiny.save_model(root / "target", tokenizer, 0, tiny.author_records(TRAINABLE) + world)
    retain_models = {}
    for seed, split in enumerate(NESTED, 1):
        path = root / f"retain-{split}"
        tiny.save_model(path, tokenizer, seed, splits[RETAIN_OF[split]] + world)
        retain_models[split] = str(path)
    recipe = tiny.RECIPE | {"methods": {"npo": {}}, "masks": ["wagle"], "model": str(root / "target"),
                            "data": str(root / "data")}  # fmt: skip
    recipe["sequential"] = {"requests": list(NESTED), "retain_models": retain_models}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    lines: list[str] = []
    run_sequential(load_recipe(root / "recipe.yaml"), root / "out", say=lines.append)
    return root, lines


def test_each_request_has_its_own_patch_inside_its_own_mask(study):
    root, _ = study
    sequence = root / "out" / "sequences" / "npo-wagle-r0.5-s0"
    records = [
        json.loads((sequence / f"{k}-{s}" / "result.json").read_text())
        for k, s in enumerate(NESTED, 1)
    ]
    assert [r["n_forget"] for r in records] == [3, 3, 6]  # 1, then 2 − 1, then 4 − 2 authors × 3
    assert [sorted(r["sets"]) for r in records] == [
        ["forget01"],
        ["forget01", "forget05"],
        sorted(NESTED),
    ]
    for r in records:
        assert (
            r["patch"]["outside_mask"] == 0 and 0 < r["patch"]["entries"] <= r["mask"]["selected"]
        )
    chain = json.loads((sequence / "chain.json").read_text())
    assert chain["target_plus_patches_is_final"] and chain["composed_patch_is_final"]
    assert chain["reverted_is_target"]


def test_earlier_sets_are_scored_against_the_cumulative_retain_model(study):
    """After request 2, forget01's forget quality is the KS p-value of its 3 truth ratios in
    the model's evaluation on forget05 against the same 3 questions' in the evaluation of the
    retain model of forget05, recomputed here from the two eval.json files."""
    root, _ = study
    out = root / "out"
    record = json.loads((out / "sequences/npo-wagle-r0.5-s0/2-forget05/result.json").read_text())
    ours = json.loads((out / "sequences/npo-wagle-r0.5-s0/2-forget05/eval.json").read_text())
    theirs = json.loads((out / "references/forget05/eval.json").read_text())
    questions = {r["question"] for r in tiny.author_records(NESTED["forget01"])}

    def ratios(evaluation):
        samples = evaluation["sections"]["forget"]["per_sample"]
        return [
            t
            for q, t in zip(samples["question"], samples["truth_ratio"], strict=True)
            if q in questions
        ]

    expected = stats.ks_pvalue(ratios(ours), ratios(theirs))
    assert record["sets"]["forget01"]["forget_quality"] == pytest.approx(expected, rel=1e-12)
    assert record["sets"]["forget01"]["n"] == 3
    final = json.loads((out / "sequences/npo-wagle-r0.5-s0/3-forget10/result.json").read_text())
    assert final["sets_last_reference"] == final["sets"]  # after the last request: one reference
    assert record["sets_last_reference"]["forget01"] != record["sets"]["forget01"]


def test_the_report_shows_requests_by_sets_drift_and_patches(study):
    root, lines = study
    report = (root / "out" / "report.md").read_text()
    assert (
        "| model | utility | forget01 (3) | forget05 − forget01 (3) | forget10 − forget05 (6) |"
        in report
    )
    assert "| after 1 (forget01) |" in report and "| · | · |" in report
    assert "- forget01: " in report and "- forget05 − forget01: " in report
    assert "[against the retain model of forget10 for both]" in report
    assert "target + the 3 patches = the final model: yes" in report
    assert "reverting them in reverse order gives the target: yes" in report
    assert any("request 3 (forget10)" in line for line in lines)


def test_wagle_report_rewrites_a_sequential_report(study, capsys):
    root, _ = study
    from wagle.cli import main

    (root / "out" / "report.md").unlink()
    assert main(["report", str(root / "out")]) == 0
    assert "| after 3 (forget10) |" in capsys.readouterr().out
    assert (root / "out" / "report.md").is_file()


def test_a_finished_study_resumes_by_applying_its_patches(study):
    root, _ = study
    before = (root / "out" / "results.json").read_text()
    lines: list[str] = []
    run_sequential(load_recipe(root / "recipe.yaml"), root / "out", say=lines.append)
    assert sum("finished earlier, its patch applied" in line for line in lines) == 3
    assert (root / "out" / "results.json").read_text() == before


def test_request_sets_are_the_new_records_of_nested_splits():
    a, b, c = ({"question": q, "answer": "x"} for q in "abc")
    sets = request_sets({"s1": [a], "s2": [a, b], "s3": [b, a, c]}, ["s1", "s2", "s3"])
    assert sets == {"s1": [a], "s2": [b], "s3": [c]}
    with pytest.raises(WagleError, match=r"must be nested splits .* s2 lacks 1 record"):
        request_sets({"s1": [a], "s2": [b]}, ["s1", "s2"])
    with pytest.raises(WagleError, match="request s2 adds no record"):
        request_sets({"s1": [a, b], "s2": [b, a]}, ["s1", "s2"])


def test_set_figures_cut_one_set_out_of_two_evaluations():
    """Set {q1, q2}: our truth ratios 0.1, 0.2 against the reference's 0.3, 0.4 separate
    completely (KS statistic 1): the exact two-sided p-value for 2 against 2 samples is
    2 / C(4, 2) = 1/3. ROUGE (0.5 + 1.0)/2 = 0.75, the reference's (0 + 0.5)/2 = 0.25."""

    def evaluation(order, truth, rouge):
        per_sample = {"question": order, "answer": ["x"] * len(order), "truth_ratio": truth,
                      "rouge_l_recall": rouge, "probability": [0.5] * len(order)}  # fmt: skip
        return {"sections": {"forget": {"per_sample": per_sample}}}

    ours = evaluation(["q1", "q2", "q3"], [0.1, 0.2, 9.0], [0.5, 1.0, 0.0])
    theirs = evaluation(["q3", "q2", "q1"], [9.0, 0.4, 0.3], [0.0, 0.5, 0.0])
    records = [{"question": "q1", "answer": "x"}, {"question": "q2", "answer": "x"}]
    figures = set_figures(ours, theirs, records)
    assert figures["forget_quality"] == pytest.approx(1 / 3)
    assert (figures["forget_rouge"], figures["reference_rouge"]) == (0.75, 0.25)
    assert figures["n"] == 2 and figures["forget_probability"] == 0.5


def test_a_sequential_recipe_refuses_auto_ratio_and_a_single_reference(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"ratios": ["auto"], "sequential": {"requests": ["forget01"]}})
    )
    with pytest.raises(WagleError, match="ratio auto is not supported in a sequential study"):
        sequential_section(load_recipe(recipe))
    recipe.write_text(yaml.safe_dump({"reference": "x", "sequential": {"requests": ["forget01"]}}))
    with pytest.raises(WagleError, match="takes a retain model per request"):
        sequential_section(load_recipe(recipe))


def write_request(directory, split, utility, qualities, fixed, kept_eligible=True, repetition=0.0):
    """A finished request's result.json and trajectory.json, with only what the report reads."""
    directory.mkdir(parents=True)
    figures = {"forget_rouge": 0.2, "reference_rouge": 0.3, "forget_probability": 0.1,
               "reference_probability": 0.1}  # fmt: skip
    record = {
        "request": int(directory.name[0]), "split": split, "n_forget": 2, "utility": utility,
        "sets": {s: {"n": 2, "forget_quality": q} | figures for s, q in qualities.items()},
        "sets_last_reference": {s: {"n": 2, "forget_quality": q} | figures
                                for s, q in fixed.items()},
        "mask": {"selected": 10}, "steps": 6, "selected_step": 6,
        "patch": {"entries": 4, "bytes": 100, "bytes_over_model": 0.5, "outside_mask": 0},
    }  # fmt: skip
    point = {"step": 6, "degenerate": not kept_eligible, "repetition": repetition,
             "model_utility": utility}  # fmt: skip
    criterion = {"met_floor": kept_eligible, "utility_threshold": 0.5}
    (directory / "result.json").write_text(json.dumps(record))
    (directory / "trajectory.json").write_text(
        json.dumps({"criterion": criterion, "selected": point, "points": [point]})
    )


def test_the_report_summarises_seeds_and_says_which_kept_points_were_ineligible(tmp_path):
    """Two seeds of one setting (a third cell has one seed: left out of the summary). After
    request 2: utility 0.8 and 0.9 → 0.850 ± 0.071 (sd of two values = |a − b|/√2); log10
    forget quality of forget01 −2 and −4 → −3.0 ± 1.4, of forget05 −4 and −6 → −5.0 ± 1.4;
    forget01's change since request 1, both against the last split's retain model (request 1's
    figure against it: 1e-1 and 1e-7): −2 − (−1) and −4 − (−7) → +1.0 ± 2.8. Seed 1's second
    request kept its last point, degenerate (repetition 0.31): 1 request of 4."""
    from wagle.experiment.sequential_report import write_sequential_report

    requests = ["forget01", "forget05"]
    (tmp_path / "recipe.json").write_text(json.dumps({"sequential": {"requests": requests}}))
    (tmp_path / "target").mkdir()
    target = {"utility": 0.95, "sets": {s: {"n": 2, "forget_quality": 1e-9, "forget_rouge": 0.9,
                                           "reference_rouge": 0.3} for s in requests}}  # fmt: skip
    (tmp_path / "target" / "sets.json").write_text(json.dumps(target))
    runs = {"npo-wagle-r0.5-s0": (0.8, 1e-3, 1e-1, 1e-2, 1e-4, True),
            "npo-wagle-r0.5-s1": (0.9, 1e-5, 1e-7, 1e-4, 1e-6, False),
            "npo-dense-s0": (0.7, 1e-1, 1e-1, 1e-1, 1e-1, True)}  # fmt: skip
    for cell, (utility, first, fixed, again, second, eligible) in runs.items():
        sequence = tmp_path / "sequences" / cell
        write_request(sequence / "1-forget01", "forget01", 0.9, {"forget01": first},
                      {"forget01": fixed})  # fmt: skip
        final = {"forget01": again, "forget05": second}
        write_request(sequence / "2-forget05", "forget05", utility, final, final, eligible, 0.31)
    report = write_sequential_report(tmp_path).read_text()
    assert (
        "| npo-wagle-r0.5 | 2 | 0.850 ± 0.071 | -3.0 ± 1.4 | -5.0 ± 1.4 | +1.0 ± 2.8 | 1 of 4 |"
        in report
    )
    assert "| npo-dense |" not in report
    assert "| 6 (6) | none eligible: the last (degenerate, repetition 0.31) |" in report
    assert report.count("| 6 (6) | eligible |") == 5
    assert "![each set's forget quality after each request](sequential.png)" in report
    assert (tmp_path / "sequential.png").read_bytes()[:4] == b"\x89PNG"
