"""`edgeport tune` on a tiny classifier: the three sets disjoint by construction, a 3-trial
tune end to end on the embedded Ray (trials through the sweep engine), the front graded on the
report set, recipes that `edgeport run` accepts, a resumed tune reusing its finished trials,
and distillation's give-up rule as the tune's pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgeport.calibration.data import Records, builtin_texts, records_from_spec
from edgeport.errors import DataFileError
from edgeport.recipe import DataSpec
from edgeport.tune.document import SetScore, Trial, TuneDocument
from edgeport.tune.search import best, closest
from edgeport.tune.space import recipe_for, steps_for
from edgeport.tune.spec import Selection
from edgeport.tune.splits import tune_sets


def _labelled(name: str, count: int | None = None) -> Records:
    texts = builtin_texts(name).texts[:count]
    return Records(name, texts, [str(len(t) % 2) for t in texts])


def test_selection_and_report_sets_are_disjoint_by_construction(tmp_path):
    train = _labelled("calibration")
    rows = list(zip(train.texts, train.labels)) + list(zip(train.texts[:30], train.labels[:30])) + [("a report", "1")]
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    data = DataSpec(path=tmp_path / "train.tsv", label_column="label")
    report = Records("report", ["a report", "another"], ["1", "0"])
    sets = tune_sets(data, Selection(size=60, seed=3, min_words=4), report)
    # the recipes name the two parts of the same file; reading them back gives disjoint rows
    selection = records_from_spec(sets.choose)
    training = records_from_spec(sets.train)
    assert len(selection.texts) == sets.selection_rows == 60 and len(training.texts) == sets.train_rows
    assert not set(selection.texts) & set(training.texts)
    assert all(len(t.split()) >= 4 for t in selection.texts)
    assert sets.dropped["train_rows_repeating_a_selection_text"] >= 1  # the duplicated rows
    assert sets.dropped["train_rows_in_report_set"] == 1  # said, not hidden
    # label-stratified and seeded
    share = selection.labels.count("1") / len(selection.labels)
    assert abs(share - train.labels.count("1") / len(train.labels)) < 0.1
    assert records_from_spec(sets.choose).texts == selection.texts
    other = tune_sets(data, Selection(size=60, seed=4, min_words=4), report)
    assert records_from_spec(other.choose).texts != selection.texts
    with pytest.raises(DataFileError, match="rows of at least 100 words"):
        tune_sets(data, Selection(size=60, min_words=100), report)


def test_phrases_inside_selection_sentences_can_leave_the_training_part(tmp_path):
    """SST-2's train.tsv holds each sentence's sub-phrases: counted always, dropped on request."""
    sentences = [f"the {i} film is a quiet and moving portrait of grief" for i in range(40)]
    phrases = [f"THE {i} film is" for i in range(40)] + [f"moving portrait of grief {i}" for i in range(40)]
    rows = [(t, str(i % 2)) for i, t in enumerate(sentences + phrases)]
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    data = DataSpec(path=tmp_path / "train.tsv", label_column="label")
    report = Records("report", ["unrelated"], ["0"])
    kept = tune_sets(data, Selection(size=20, seed=0, min_words=8), report)
    chosen = records_from_spec(kept.choose).texts
    numbers = {t.split()[1] for t in chosen}
    inside = [t for t in phrases if t.startswith("THE") and t.split()[1] in numbers]  # case-insensitive runs
    assert kept.dropped["train_rows_inside_a_selection_text"] == len(inside) == 20
    assert set(inside) <= set(records_from_spec(kept.train).texts)  # left in: said, not hidden
    dropped = tune_sets(data, Selection(size=20, seed=0, min_words=8, drop_inner_phrases=True), report)
    training = records_from_spec(dropped.train).texts
    assert records_from_spec(dropped.choose).texts == chosen and dropped.train_rows == len(training)
    assert not set(inside) & set(training) and len(training) == kept.train_rows - 20
    assert all(t in training for t in phrases if t.startswith("moving"))  # not a run of whole words inside
    assert dropped.train.split.drop_inner_phrases and kept.train.split.drop_inner_phrases is None
    assert "drop_inner_phrases" not in kept.train.model_dump(exclude_none=True)["split"]  # off: keys unchanged


def test_a_trials_recipe_keeps_selection_and_report_apart(tmp_path):
    from edgeport.recipe import SplitSpec, recipe_from_dict

    file = DataSpec(path=tmp_path / "train.tsv", label_column="label")
    train = file.model_copy(update={"split": SplitSpec(part="rest", size=10)})
    choose = file.model_copy(update={"split": SplitSpec(part="selection", size=10)})
    report = DataSpec(path=tmp_path / "dev.tsv", label_column="label")
    params = {"blocks": 4, "heads": 1.0, "ffn": 0.3, "embedding_rank": 96, "prune_vocab": True, "epochs": 2,
              "augment": 1, "augment_rate": 0.4, "int8_max_drop": 0.5, "target": "openvino-int8"}
    assert [s["op"] for s in steps_for(params, 6, 4.0)] == ["prune_vocab", "drop_blocks", "prune_ffn", "low_rank",
                                                          "distill"]
    assert steps_for({"blocks": 6}, 6, None) == [{"op": "distill"}]  # keeping every block drops none
    trial = recipe_from_dict(recipe_for({"model": "minilm"}, params, 6, train, choose, None, 4.0))
    final = recipe_from_dict(recipe_for({"model": "minilm"}, params, 6, train, choose, report, None))
    assert trial.eval == choose == trial.budget.data  # a trial is ranked on the selection rows
    assert final.eval == report and final.budget.data == choose  # graded on the report set
    assert trial.compress.data == final.compress.data == trial.calibration.data == train
    assert trial.compress.steps[-1].give_up_drop == 4.0 and final.compress.steps[-1].give_up_drop is None
    assert (final.compress.steps[-1].augment, final.compress.steps[-1].augment_rate) == (1, 0.4)
    ablated = recipe_from_dict(recipe_for({"model": "minilm"}, {**params, "augment": 0}, 6, train, choose, None, None))
    assert ablated.compress.steps[-1].augment == 0 and "augment_rate" not in ablated.compress.steps[-1].model_fields_set
    # a trial's recipe travels dumped whole (every default written out) and is read back as it was
    assert recipe_from_dict(ablated.model_dump(mode="json")).compress.steps[-1] == ablated.compress.steps[-1]
    assert final.budget.max_drop == 0.5 and final.budget.min_fidelity is None and final.targets == ["openvino-int8"]
    # without an INT8 budget in the space, the base recipe's own budget stands (choosing on selection rows)
    kept = recipe_from_dict(recipe_for({"model": "minilm", "budget": {"min_fidelity": 0.99}}, {"blocks": 4}, 6,
                                       train, choose, report, None))
    assert kept.budget.min_fidelity == 0.99 and kept.budget.max_drop is None and kept.budget.data == choose
    # the base recipe's target options reach every trial (the tuned SST-2 recipe's INT4 settings)
    base = {"model": "minilm", "targets": ["openvino-int4"],
            "target_options": {"openvino-int4": {"all_layers": True, "group_size_fallback": "adjust"}}}
    int4 = recipe_from_dict(recipe_for(base, {"blocks": 4}, 6, train, choose, None, None))
    assert int4.targets == ["openvino-int4"] and int4.target_options["openvino-int4"]["all_layers"] is True
    # a space over targets: each trial carries its own target's options only (a run refuses the others')
    base["target_options"]["openvino-int8"] = {"tables": "int4", "inference_precision": None}
    for target in ("openvino-int4", "openvino-int8"):
        trial = recipe_from_dict(recipe_for(base, {"blocks": 4, "target": target}, 6, train, choose, None, None))
        assert trial.targets == [target] and list(trial.target_options) == [target]
    assert trial.target_options["openvino-int8"] == {"tables": "int4", "inference_precision": None}


def test_an_untrained_build_keeps_the_trials_shapes_and_nothing_else(tmp_path):
    """The build a tune weighs before distilling a trial: every shape-changing pass on the same
    data, no distillation, no budget (no fallback layers), no grading, no profile."""
    from edgeport.recipe import SplitSpec, recipe_from_dict
    from edgeport.tune.run import _fits_now
    from edgeport.tune.space import untrained
    from edgeport.tune.spec import Limits

    file = DataSpec(path=tmp_path / "train.tsv", label_column="label")
    train = file.model_copy(update={"split": SplitSpec(part="rest", size=10)})
    choose = file.model_copy(update={"split": SplitSpec(part="selection", size=10)})
    params = {"blocks": 3, "heads": 0.5, "ffn": 0.2, "embedding_rank": 96, "prune_vocab": True, "epochs": 2,
              "int8_max_drop": 0.5}
    base = {"model": "minilm", "targets": ["openvino-int8"], "calibration": {"size": 300},
            "target_options": {"openvino-int8": {"tables": "int4"}}}
    trial = recipe_for(base, params, 6, train, choose, None, 4.0)
    weighed = recipe_from_dict(untrained(trial))
    assert [s.op for s in weighed.compress.steps] == ["prune_vocab", "drop_blocks", "prune_heads", "prune_ffn",
                                                      "low_rank"]
    assert [s.model_dump() for s in weighed.compress.steps] == [s.model_dump()
                                                                for s in recipe_from_dict(trial).compress.steps[:-1]]
    assert weighed.compress.data == train and weighed.calibration.data == train and weighed.calibration.size == 16
    assert weighed.eval is None and weighed.profile.enabled is False
    assert weighed.budget.max_drop is None and weighed.budget.min_fidelity is None and weighed.budget.data is None
    assert weighed.targets == ["openvino-int8"] and weighed.target_options == {"openvino-int8": {"tables": "int4"}}
    assert trial["compress"]["steps"][-1]["op"] == "distill"  # the trial's own recipe is left as it was
    # a resumed tune forgets a size-pruned trial that its new limit lets through, and keeps the others
    pruned = Trial(number=0, params={}, state="pruned", pruned_by="size", size_mb=3.2, feasible=False)
    assert _fits_now(pruned, Limits(max_size_mb=3.5)) and _fits_now(pruned, Limits(max_size_mb=None))
    assert not _fits_now(pruned, Limits(max_size_mb=3.0))
    assert not _fits_now(pruned.model_copy(update={"pruned_by": "distillation"}), Limits(max_size_mb=3.5))


def _trial(number, drop, size, p50, feasible=True):
    score = SetScore(set="selection", source="s", samples=10, original=90.0, artifact=90.0 - drop, drop_points=drop)
    return Trial(number=number, params={}, state="complete", selection=score, size_mb=size, p50_ms=p50,
                 feasible=feasible)


def test_best_is_the_smallest_feasible_or_the_fastest():
    trials = [_trial(0, 0.2, 5.0, 1.0), _trial(1, 0.9, 3.0, 2.0), _trial(2, 3.0, 1.0, 0.5, feasible=False)]
    assert best(trials, "size") == 1
    assert best(trials, "latency") == 0
    assert best([trials[2]], "size") is None
    missing = [t.model_copy(update={"violations": v}) for t, v in
               zip(trials, [["drop", "size"], ["size"], ["drop"]])]
    assert closest(missing) == 1  # one limit missed, and the smaller drop of the two that miss one


def test_the_search_never_spends_a_trial_on_a_recipe_it_ran(tmp_path):
    """Four recipes in the space, six trials asked for: four distinct trials, then the search stops."""
    from edgeport.tune.search import optimise
    from edgeport.tune.spec import TuneSpec
    from edgeport.ui import UI

    spec = TuneSpec(data={"path": tmp_path / "t.tsv"}, space={"blocks": [1, 2], "ffn": [0.5, 1.0]}, trials=6,
                    limits={"max_drop": 1.0})
    ran: list[dict] = []

    def run_batch(batch):
        ran.extend(params for _, params in batch)
        return [_trial(number, 0.5 * params["blocks"], params["ffn"], 1.0).model_copy(update={"params": params})
                for number, params in batch]

    ended: list[Trial] = []
    optimise(spec, {}, [], 2, run_batch, ended.append, UI(quiet=True))
    assert len(ran) == 4 and len({tuple(sorted(p.items())) for p in ran}) == 4
    assert [t.number for t in ended] == [0, 1, 2, 3]


def _tune_file(tmp_path: Path, model: Path, trials: int = 3) -> Path:
    train = _labelled("calibration")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{t}\t{l}\n" for t, l in zip(train.texts, train.labels)))
    report = _labelled("heldout", 40)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{t}\t{l}\n" for t, l in zip(report.texts, report.labels)))
    spec = {"name": "tiny", "recipe": {"model": str(model), "targets": ["onnx-int8"], "calibration": {"size": 32},
                                       "profile": {"runs": 3, "warmup": 1},
                                       "eval": {"path": "dev.tsv", "text_column": "sentence", "label_column": "label"}},
            "data": {"path": "train.tsv", "text_column": "sentence", "label_column": "label"},
            "selection": {"size": 48, "seed": 1},
            "space": {"blocks": [1, 2], "ffn": [0.5, 1.0], "epochs": [1], "lr": [0.001], "max_samples": [96],
                      "int8_max_drop": [50.0]},
            "limits": {"max_drop": 50.0}, "ablate": {"hidden_weight": 0.0}, "trials": trials,
            "device": "board", "devices": {"board": {"device": "local"}},  # p50 from a named device's profile
            "parallel": 2, "resources": {"cpus": 1}, "seed": 0}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.ray
def test_tune_runs_end_to_end_grades_the_front_and_resumes(tiny_models, tmp_path, run_cli):
    model = tiny_models("bert", "text-classification")
    path = _tune_file(tmp_path, model)
    out = tmp_path / "out"
    code, stdout, err = run_cli("--json", "tune", path, "--out", out)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["schema"] == "edgeport-tune/1" and doc["status"] == "complete"
    assert TuneDocument.model_validate(doc).document() == doc  # the versioned contract, whole
    assert json.loads((out / "tune.json").read_text()) == doc
    searched = [t for t in doc["trials"] if t["ablation_of"] is None]
    assert len(searched) == 3 and {t["state"] for t in doc["trials"]} == {"complete"}
    # the ablation: the best search trial again without hidden-state matching, on the selection rows
    (ablation,) = [t for t in doc["trials"] if t["ablation_of"] is not None]
    assert ablation["ablation_of"] == doc["best"] and ablation["changed"] == {"hidden_weight": 0.0}
    assert ablation["params"] == {**searched[doc["best"]]["params"], "hidden_weight": 0.0}
    assert ablation["number"] not in doc["front"] and ablation["report"] is None
    assert f"Ablation hidden_weight=0.0 of trial {doc['best']}" in (out / "tune.md").read_text()
    sets = doc["sets"]
    assert sets["selection_rows"] == 48 and sets["report_rows"] == 40
    assert sets["dropped"]["train_rows_in_report_set"] == 0
    for trial in doc["trials"]:
        sel = trial["selection"]
        assert sel["set"] == "selection" and sel["samples"] == 48
        assert sel["drop_points"] == pytest.approx(sel["original"] - sel["artifact"], abs=0.011)
        assert trial["size_mb"] > 0 and trial["p50_ms"] > 0 and trial["profiled_on"] == "board"
        job = json.loads((out / "jobs" / trial["key"][:16] / "job.json").read_text())
        assert job["recipe"]["eval"] == job["recipe"]["budget"]["data"]  # ranked on the selection rows
        assert job["recipe"]["eval"]["split"]["part"] == "selection"
        assert job["recipe"]["compress"]["data"]["split"]["part"] == "rest"
        graded = trial["number"] in doc["front"]
        assert (trial["report"] is not None) == graded  # only the front is measured on the report set
        if graded:
            assert trial["report"]["set"] == "report" and trial["report"]["samples"] == 40
    sizes = {t["number"]: t["size_mb"] for t in doc["trials"]}
    assert doc["best"] is not None and sizes[doc["best"]] == min(sizes[n] for n in doc["front"])
    best_recipe = yaml.safe_load(Path(doc["recipes"]["best"]).read_text())
    assert best_recipe["eval"] == {"path": "../../dev.tsv", "text_column": "sentence", "label_column": "label"}
    assert best_recipe["budget"]["data"]["split"] == {"part": "selection", "size": 48, "seed": 1, "min_words": 0}
    assert best_recipe["compress"]["data"]["path"] == "../../train.tsv"  # relative to the recipe file
    # the best recipe reproduces the trial with `edgeport run`: same structure, same report-set figure
    code, stdout, err = run_cli("--json", "run", doc["recipes"]["best"], "--out", tmp_path / "rerun")
    assert code == 0, err
    rerun = json.loads(stdout)["targets"]["onnx-int8"]
    chosen = next(t for t in doc["trials"] if t["number"] == doc["best"])
    assert rerun["size_mb"] == pytest.approx(chosen["size_mb"], rel=0.02)
    assert rerun["accuracy"]["samples"] == 40
    assert rerun["accuracy"]["artifact"] * 100 == pytest.approx(chosen["report"]["artifact"], abs=5.01)
    assert "trials" in (out / "tune.html").read_text() and "data:image/png;base64," in (out / "tune.html").read_text()
    assert "| trial |" in (out / "tune.md").read_text()

    # resumed with one more trial and a limit nothing meets: the finished trials join the study and
    # are judged again, the new trial is pruned by its untrained build before any distillation, and
    # the tune says no trial met the limits (exit 5)
    spec = yaml.safe_load(path.read_text())
    spec["limits"]["max_size_mb"] = 0.001
    path.write_text(yaml.safe_dump(spec))
    code, stdout, err = run_cli("--json", "tune", path, "--out", out, "--trials", "4", "--resume")
    assert code == 5 and "no trial met every limit" in err, err
    again = json.loads(stdout)
    assert again["best"] is None and again["closest"] is not None
    assert all(not t["feasible"] and any("size" in v for v in t["violations"]) for t in again["trials"])
    assert Path(again["recipes"]["closest"]).is_file() and "best" not in again["recipes"]
    assert sum(t["ablation_of"] is None for t in again["trials"]) == 4
    assert [t["key"] for t in again["trials"][:4]] == [t["key"] for t in doc["trials"]]
    new = again["trials"][4]
    new_steps = steps_for(new["params"], 2, None)
    assert new["number"] == 4 and new["ablation_of"] is None
    assert (new["state"], new["pruned_by"], new["selection"], new["report"]) == ("pruned", "size", None, None)
    assert new["size_mb"] > 0.001 and new["violations"] == [f"size {new['size_mb']:.2f} > 0.001 MB untrained, "
                                                             "before distillation"]
    weighed = json.loads((out / "jobs" / new["key"][:16] / "job.json").read_text())
    assert weighed["device"] is None and weighed["recipe"].get("eval") is None  # not profiled on the board, not graded
    built = json.loads((out / "jobs" / new["key"][:16] / "results.json").read_text())
    assert [p["op"] for p in built["compression"]["passes"]] == [s["op"] for s in new_steps][:-1]  # all but distill
    assert built["targets"]["onnx-int8"]["size_mb"] == new["size_mb"]
    assert built["targets"]["onnx-int8"]["fallback"]["fp32_layers"] == []  # no budget: nothing kept float
    assert "| pruned (size) |" in (out / "tune.md").read_text()


def test_tune_refuses_bad_files_early(tiny_models, tmp_path, run_cli):
    model = tiny_models("bert", "feature-extraction")
    path = _tune_file(tmp_path, model)
    code, _, err = run_cli("tune", path, "--out", tmp_path / "o")
    assert code == 2 and "text-classification" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "tune.json").exists()
    spec = yaml.safe_load(path.read_text())
    spec["space"]["width"] = [1]
    path.write_text(yaml.safe_dump(spec))
    code, _, err = run_cli("tune", path)
    assert code == 2 and "unknown parameter(s) width" in err
    code, _, err = run_cli("tune", tmp_path / "missing.yaml")
    assert code == 2 and "does not exist" in err
