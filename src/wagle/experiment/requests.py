"""Forget requests that arrive one after another, and the figures of each request's forget set.

Requests are forget splits in the order they arrive; each *request set* is the records of its
split that no earlier request covered. TOFU's nested splits (forget01 ⊂ forget05 ⊂ forget10)
become three disjoint requests: forget01, forget05 minus forget01, forget10 minus forget05. The
union of the sets up to request k is split k itself, so split k is the *cumulative* forget set
after request k, and a retain model trained without split k is the reference for every set up
to k (it never saw any of them).

After request k the model is evaluated once on split k; ``set_figures`` cuts that evaluation's
per-sample forget values (and the reference's) into the request sets, so every earlier set's
forget quality is the KS test of its own truth ratios against the same records' truth ratios
under the retain model of split k.
"""

from __future__ import annotations

from typing import Any

from wagle.errors import WagleError
from wagle.evaluation import stats
from wagle.validate import record_key

Records = list[dict[str, Any]]


def request_sets(splits: dict[str, Records], requests: list[str]) -> dict[str, Records]:
    """Request split → its set (records not in an earlier request); a user error unless the
    splits are nested (each holds the earlier ones) and every set is non-empty."""
    sets: dict[str, Records] = {}
    seen: set[str] = set()
    for split in requests:
        keys = {record_key(r) for r in splits[split]}
        if missing := seen - keys:
            raise WagleError(
                f"forget requests must be nested splits (each holding the earlier ones, as "
                f"TOFU's forget01 ⊂ forget05 ⊂ forget10): {split} lacks {len(missing)} "
                "record(s) of an earlier request"
            )
        sets[split] = [r for r in splits[split] if record_key(r) not in seen]
        if not sets[split]:
            raise WagleError(f"request {split} adds no record to the earlier requests")
        seen |= keys
    return sets


def retain_split_of(forget_split: str) -> str:
    """TOFU's naming: the retain split complementary to ``forgetXX`` is ``retain{100-XX}``."""
    return f"retain{100 - int(forget_split.removeprefix('forget'))}"


def set_figures(
    evaluation: dict[str, Any], reference: dict[str, Any], records: Records
) -> dict[str, Any]:
    """The forget figures of one request set, cut out of an evaluation on a split that holds
    it, against the reference evaluation (a retain model, the same split): forget quality (KS
    p-value of the set's truth ratios against the reference's on the same records), mean ROUGE-L
    recall and probability, and the reference's."""
    ours, theirs = _forget(evaluation), _forget(reference)
    rows_ours, rows_theirs = _rows(ours, records), _rows(theirs, records)

    def mean(section: dict[str, Any], rows: list[int], metric: str) -> float:
        values = section["per_sample"][metric]
        return sum(values[i] for i in rows) / len(rows)

    truth_ours = [ours["per_sample"]["truth_ratio"][i] for i in rows_ours]
    truth_theirs = [theirs["per_sample"]["truth_ratio"][i] for i in rows_theirs]
    return {
        "n": len(records),
        "forget_quality": stats.ks_pvalue(truth_ours, truth_theirs),
        "forget_rouge": mean(ours, rows_ours, "rouge_l_recall"),
        "forget_probability": mean(ours, rows_ours, "probability"),
        "reference_rouge": mean(theirs, rows_theirs, "rouge_l_recall"),
        "reference_probability": mean(theirs, rows_theirs, "probability"),
    }


def _forget(evaluation: dict[str, Any]) -> dict[str, Any]:
    return evaluation["sections"]["forget"]


def _rows(section: dict[str, Any], records: Records) -> list[int]:
    """The positions of ``records`` among the section's samples (by question and answer)."""
    per_sample = section["per_sample"]
    where = {
        record_key({"question": q, "answer": a}): i
        for i, (q, a) in enumerate(zip(per_sample["question"], per_sample["answer"], strict=True))
    }
    try:
        return [
            where[record_key({"question": r["question"], "answer": r["answer"]})] for r in records
        ]
    except KeyError:
        raise WagleError("an evaluation does not cover every record of a request set") from None
