"""`edgeport tune`: carve the selection rows, search the space with Optuna (multi-objective TPE
over accuracy drop, size and p50, with the limits as constraints), run each batch of trials
as sweep jobs on Ray (embedded by default, a cluster by address), then grade the front once
on the report set and write the recipes.

A trial's job is content-keyed like a sweep job: a trial whose recipe ran before (in this
tune folder) is read back, not rerun; ``--resume`` also hands the finished trials to the
new study, so the search continues where it stopped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from edgeport.calibration.data import records_from_spec
from edgeport.errors import EdgeportError, UsageError
from edgeport.recipe import (DEFAULT_MODEL, DataSpec, Recipe, anchored, data_mappings, recipe_from_dict,
                             recipe_from_yaml)
from edgeport.runs import atomic_write_text, cache_key, read_json, write_json
from edgeport.sweep.folder import finished, write_job
from edgeport.sweep.report import pareto
from edgeport.sweep.spec import Plan
from edgeport.tune import report, search
from edgeport.tune.document import Sets, Trial, TuneDocument
from edgeport.tune.space import recipe_for, untrained
from edgeport.tune.spec import TuneSpec, read_tune
from edgeport.tune.splits import tune_sets
from edgeport.tune.trials import job_for, merged, oversize_from, trial_from, violations
from edgeport.ui import UI

DOCUMENT = "tune.json"
# what a resumed tune may change: how many trials, how many at once, the ablations, and the limits
# and preference (finished trials are judged again against the new ones)
RESUMABLE = {"trials", "parallel", "ablate", "limits", "prefer"}


def _base_recipe(spec: TuneSpec, base_dir: Path) -> tuple[dict, Recipe]:
    """The tune's base recipe as JSON with absolute paths (a recipe file is read relative to itself)."""
    if isinstance(spec.recipe, str):
        recipe = recipe_from_yaml(base_dir / spec.recipe)
    else:  # paths of an inline recipe are relative to the tune file
        recipe = anchored(recipe_from_dict(spec.recipe, source="the tune file's recipe"), base_dir)
    if recipe.eval is None:
        raise UsageError("a tune grades its front on the recipe's eval: data (the report set), which it needs "
                         "labelled", hint="recipe: {eval: {path: dev.tsv, label_column: label}}")
    if recipe.compress is not None:
        raise UsageError("the tune's recipe has a compress: section; the tune writes it from the space",
                         hint="drop recipe.compress")
    return recipe.model_dump(mode="json"), recipe  # nulls kept: budget.min_fidelity: null means "off"


def _data_spec(spec: DataSpec, base_dir: Path) -> DataSpec:
    return spec if spec.path.is_absolute() else spec.model_copy(update={"path": base_dir / spec.path})


def _layers(recipe: Recipe):
    from edgeport.compress.blocks import block_list
    from edgeport.model.load import model_from_path, path_from_ref

    loaded = model_from_path(path_from_ref(recipe.model), recipe.trust_pickle)
    if loaded.task != "text-classification":
        raise UsageError(f"a tune ranks trials by accuracy on single texts; this model's task is {loaded.task}",
                         hint="tune a text-classification model (pairs and per-token tasks are not tuned yet)")
    return loaded, len(block_list(loaded))


class _Tune:
    """One tune: its spec and sets (made in ``prepare``), the trials so far, and the folder."""

    def __init__(self, spec: TuneSpec, path: Path, out: Path, resume: bool, ui: UI):
        self.spec, self.out, self.ui = spec, out, ui
        self.name = spec.name or Path(path).stem
        base_dir = Path(path).absolute().parent
        self.base, self.recipe = _base_recipe(spec, base_dir)
        self.spec_sha = cache_key(kind="edgeport-tune/1", base=self.base,
                                  spec=spec.model_dump(mode="json", exclude=RESUMABLE))
        previous = _previous(out, resume, self.spec_sha)
        self.created = previous["created"] if previous else time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.trials = [_judged(Trial.model_validate(t), spec.limits) for t in (previous or {}).get("trials", [])]
        self.trials = [t for t in self.trials if not _fits_now(t, spec.limits)]
        self.original, self.layers = _layers(self.recipe)  # refused here, before any trial, if not a classifier
        self.training = _data_spec(spec.data, base_dir)
        self.report_records = records_from_spec(self.recipe.eval, need_labels=True)
        self.engine: dict | None = None
        self.started = time.perf_counter()

    def prepare(self) -> None:
        """The selection rows carved out of the training data, and what the three sets hold."""
        recipe, spec = self.recipe, self.spec
        with self.ui.step("carving the selection rows out of the training data"):
            carved = tune_sets(self.training, spec.selection, self.report_records)
        self.train, self.choose = carved.train, carved.choose
        self.ui.info(f"training rows {carved.train_rows}, selection rows {carved.selection_rows}, report rows "
                     f"{len(self.report_records.texts)} ({recipe.eval.path.name}); {carved.dropped}")
        shared = carved.dropped["selection_rows_in_report_set"] + carved.dropped["train_rows_in_report_set"]
        if shared:
            self.ui.warn(f"{shared} rows of the training data are also in the report set ({recipe.eval.path.name}): "
                         "its figures are not on unseen data")
        inner = carved.dropped["train_rows_inside_a_selection_text"]
        if inner and not spec.selection.drop_inner_phrases:
            self.ui.warn(f"{inner} training rows are phrases inside selection texts and stay in training: the "
                         "selection rows are partly seen (selection: {drop_inner_phrases: true} drops them)")
        self.sets = Sets(training=str(self.training.path), train_rows=carved.train_rows,
                         selection_rows=carved.selection_rows, selection_seed=spec.selection.seed,
                         selection_min_words=spec.selection.min_words,
                         selection_drop_inner_phrases=spec.selection.drop_inner_phrases, report=str(recipe.eval.path),
                         report_rows=len(self.report_records.texts), dropped=carved.dropped)

    def document(self, status: str, front=(), best=None, closest=None, recipes=None) -> TuneDocument:
        return TuneDocument(name=self.name, created=self.created, spec_sha256=self.spec_sha, status=status,
                            sets=self.sets, limits=self.spec.limits.model_dump(mode="json"),
                            objectives=search.objectives(self.base), prefer=self.spec.prefer, trials=self.trials,
                            front=list(front), best=best, closest=closest, recipes=recipes or {},
                            engine=self.engine, wall_seconds=round(time.perf_counter() - self.started, 1))

    def save(self, document: TuneDocument) -> None:
        write_json(self.out / DOCUMENT, document.document())

    def run_batch(self, batch: list[tuple[int, dict]]) -> list[Trial]:
        """Run a batch of trials as sweep jobs (a recipe that ran before is read back), those whose
        untrained student is already over the size limit pruned first (``prune.oversize``)."""
        spec, out = self.spec, self.out
        params_of = dict(batch)
        results = self._oversize(batch)
        plans = {number: job_for(spec, self._trial_recipe(params), number, out)
                 for number, params in batch if number not in results}

        def ended(number: int, record: dict) -> None:
            results[number] = trial_from(number, params_of[number], record, out, plans[number].jobs[0], spec)
            self.ui.info(report.trial_line(results[number]))

        self._run(plans, ended)
        return [results[number] for number, _ in batch]

    def _oversize(self, batch: list[tuple[int, dict]]) -> dict[int, Trial]:
        """The trials of ``batch`` pruned (or failed) by their untrained build, before distillation."""
        limit = self.spec.limits.max_size_mb
        if limit is None or not self.spec.prune.oversize:
            return {}
        params_of = dict(batch)
        plans = {number: job_for(self.spec, untrained(self._trial_recipe(params)), number, self.out, profiled=False)
                 for number, params in batch}
        stopped: dict[int, Trial] = {}

        def weighed(number: int, record: dict) -> None:
            trial = oversize_from(number, params_of[number], record, plans[number].jobs[0], limit)
            if trial is not None:
                stopped[number] = trial
                self.ui.info(report.trial_line(trial))

        with self.ui.step(f"weighing the untrained students of trials {batch[0][0]}-{batch[-1][0]} "
                          f"against max_size_mb {limit}"):
            self._run(plans, weighed)
        return stopped

    def _run(self, plans: dict[int, Plan], ended) -> None:
        """Each plan's one job on the engine, ``ended(number, record)`` as it ends; a job that
        finished before (same recipe, this tune folder) is read back, and one the sampler asked
        for twice runs once."""
        from edgeport.sweep.engine import run_jobs

        by_key: dict[str, list[int]] = {}
        for number, plan in plans.items():
            record = finished(self.out, plan.jobs[0])
            if record:
                ended(number, {**record, "cached": True})
            else:
                by_key.setdefault(plan.jobs[0].key, []).append(number)

        def on_done(job, build, profile, error) -> None:
            record = write_job(self.out, job, build, profile, error)
            for number in by_key[job.key]:
                ended(number, record)

        if by_key:
            unique = [plans[numbers[0]] for numbers in by_key.values()]
            run_jobs(merged(unique), [plan.jobs[0] for plan in unique], on_done, self.ui)

    def _trial_recipe(self, params: dict) -> dict:
        return recipe_for(self.base, params, self.layers, self.train, self.choose, None, self.spec.prune.give_up_drop)

    def on_trial(self, trial: Trial) -> None:
        self.trials = sorted([t for t in self.trials if t.number != trial.number] + [trial], key=lambda t: t.number)
        self.save(self.document("running"))

    def search(self, address: str | None) -> None:
        """The trials, then the ablations of the chosen one, on one Ray session."""
        from edgeport.sweep.engine import session

        self.out.mkdir(parents=True, exist_ok=True)
        try:
            with session(address, self.out, [self.spec.device] if self.spec.device else [], self.ui) as engine:
                self.engine = engine
                search.optimise(self.spec, self.base, self.trials, search.parallel_of(self.spec, engine),
                                self.run_batch, self.on_trial, self.ui)
                best, closest = self.chosen()
                self.ablate(best if best is not None else closest)
        except (KeyboardInterrupt, EdgeportError):
            self.save(self.document("interrupted"))
            raise

    def chosen(self) -> tuple[int | None, int | None]:
        """(best, closest): the best feasible search trial, else the one that misses least."""
        complete = [t for t in self.trials if t.state == "complete" and t.ablation_of is None]
        best = search.best(complete, self.spec.prefer)
        return best, (search.closest(complete) if best is None else None)

    def ablate(self, best: int | None) -> None:
        """The chosen trial with each ``ablate:`` parameter changed, one at a time (missing ones only)."""
        by_number = {t.number: t for t in self.trials}
        if best is None or not self.spec.ablate:
            return
        done = {(t.ablation_of, tuple(sorted(t.changed.items()))) for t in self.trials if t.changed}
        asked = [(name, value) for name, value in self.spec.ablate.items()
                 if by_number[best].params.get(name) != value and (best, ((name, value),)) not in done]
        if not asked:
            return
        first = max(by_number) + 1
        batch = [(first + i, {**by_number[best].params, name: value}) for i, (name, value) in enumerate(asked)]
        for trial, (name, value) in zip(self.run_batch(batch), asked):
            self.on_trial(trial.model_copy(update={"ablation_of": best, "changed": {name: value}}))

    def finish(self) -> dict:
        """The front graded once on the report set; the recipes; tune.json, tune.md, tune.html."""
        best, closest = self.chosen()
        front = _front([t for t in self.trials if t.state == "complete" and t.ablation_of is None])
        graded = {t.number: t for t in self.trials}
        measured = sorted(set(front) | ({closest} if closest is not None else set()))
        with self.ui.step(f"grading {len(measured)} trials (the front) on the report set, once"):
            grader = report.Grader(self.original, self.report_records)
            for number in measured:
                graded[number] = grader.graded(graded[number], self.out)
        self.trials = [graded[t.number] for t in self.trials]
        named = [(f"trial-{n}", n) for n in front] + [(name, n) for name, n in (("best", best), ("closest", closest))
                                                      if n is not None]
        recipes = _write_recipes(self.out, self.base, self.layers, self.train, self.choose, self.recipe.eval, named,
                                 self.trials)
        final = self.document("complete", front, best, closest, recipes).document()
        write_json(self.out / DOCUMENT, final)
        atomic_write_text(self.out / "tune.md", report.markdown(final))
        atomic_write_text(self.out / "tune.html", report.html_report(final))
        self.ui.info(f"tune folder: {self.out}  (report: {self.out / 'tune.html'}; best recipe: "
                     f"{recipes.get('best', 'none met every limit; closest: ' + str(recipes.get('closest')))})")
        return final


def run_tune(path: Path, out: Path | None, address: str | None, trials: int | None, resume: bool, ui: UI) -> dict:
    """Run the tune file at ``path`` into ``out``: the search, then the front graded; its document."""
    spec = read_tune(path)
    if trials is not None:
        spec = spec.model_copy(update={"trials": trials})
    tune = _Tune(spec, path, Path(out or Path("runs") / Path(path).stem).absolute(), resume, ui)
    tune.prepare()
    tune.search(address)
    return tune.finish()


def _previous(out: Path, resume: bool, spec_sha: str) -> dict | None:
    path = out / DOCUMENT
    if not resume:
        return None
    if not path.is_file():
        raise UsageError(f"nothing to resume: '{out}' holds no {DOCUMENT}", hint="run the tune without --resume")
    previous = read_json(path)
    if previous.get("spec_sha256") != spec_sha:
        raise UsageError(f"the tune in '{out}' was made from another tune file or base recipe",
                         hint="run without --resume (trials whose recipe ran before are still reused)")
    return previous


def _front(complete: list[Trial]) -> list[int]:
    points = {str(t.number): (t.selection.artifact, t.p50_ms, t.size_mb, None) for t in complete}
    return sorted(int(key) for key in pareto(points))


def _relative(recipe: dict, folder: Path) -> dict:
    """Paths relative to the recipe file's folder (how recipe files are read): the tune folder moves whole."""
    def rel(value: str) -> str:
        return os.path.relpath(value, folder) if Path(value).is_absolute() else value

    if recipe["model"] != DEFAULT_MODEL:
        recipe["model"] = rel(recipe["model"])
    for _, data in data_mappings(recipe):
        data["path"] = rel(data["path"])
    return recipe


def _judged(trial: Trial, limits) -> Trial:
    """A finished trial judged against (possibly new) limits."""
    if trial.state != "complete":
        return trial
    missed = violations(limits, trial.selection.drop_points, trial.size_mb, trial.p50_ms)
    return trial.model_copy(update={"violations": missed, "feasible": not missed})


def _fits_now(trial: Trial, limits) -> bool:
    """A trial pruned for its untrained size that the (new) size limit lets through: it is
    dropped from a resumed tune, so the search may ask for it again."""
    return trial.pruned_by == "size" and (limits.max_size_mb is None or trial.size_mb <= limits.max_size_mb)


WHAT = {"best": "the best feasible trial", "closest": "no trial met every limit: the one that misses least"}


def _write_recipes(out: Path, base: dict, layers: int, train: DataSpec, choose: DataSpec, report_set: DataSpec,
                   named: list[tuple[str, int]], trials: list[Trial]) -> dict[str, str]:
    """A recipe per named trial (trial-N.yaml for the front, best.yaml or closest.yaml): graded on the
    report set, the INT8 budget choosing on the selection rows, so that ``edgeport run`` reproduces
    the trial's artifact and its figures."""
    by_number = {t.number: t for t in trials}
    written: dict[str, str] = {}
    folder = out / "recipes"
    for name, number in named:
        trial = by_number[number]
        recipe = _relative(recipe_for(base, trial.params, layers, train, choose, report_set, None), folder)
        recipe_from_dict(recipe)  # a recipe the schema accepts
        head = (f"# edgeport tune: trial {number} ({WHAT.get(name, 'on the front')})\n"
                f"# parameters: {trial.params}\n# reproduce: edgeport run {folder / (name + '.yaml')}\n")
        atomic_write_text(folder / f"{name}.yaml", head + yaml.safe_dump(recipe, sort_keys=False))
        written[name] = str(folder / f"{name}.yaml")
    return written
