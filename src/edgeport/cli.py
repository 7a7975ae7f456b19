"""The `edgeport` command: a root group, one small function per command, one way to abort.

Every user error is an :class:`~edgeport.errors.EdgeportError`; ``main`` prints it as one
line (``error: ...``) and exits with its code. Tracebacks appear only with ``--debug``.
SIGTERM (what ``timeout``, CI runners and schedulers send) is handled like Ctrl-C: the work
unwinds, temporary folders are removed, a stage being swapped into place finishes first, and
the command exits 143 (130 for Ctrl-C). Commands that write to a run folder hold its lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import signal
import sys
import threading
from pathlib import Path

import click

from edgeport import __version__
from edgeport.errors import EXIT_CODES, EdgeportError, UsageError
from edgeport.recipe import DEFAULT_TARGETS, TASKS
from edgeport.ui import UI, quiet_libraries

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())


class State:
    def __init__(self, debug: bool, as_json: bool):
        self.debug = debug
        self.as_json = as_json
        self.ui = UI(quiet=as_json)

    def emit(self, document, human: str | None = None) -> None:
        if hasattr(document, "document"):  # a results model: rendered here, at the edge
            document = document.document()
        if self.as_json:
            click.echo(json.dumps(document, indent=2))
        elif human:
            click.echo(human)

    def work(self):
        """While the work of a command runs, whatever the libraries print on stdout (NNCF's
        progress bars, for one) goes to stderr: stdout carries only edgeport's result."""
        return contextlib.redirect_stdout(sys.stderr)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeport")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option("--json", "as_json", is_flag=True, help="Print the results document as JSON on stdout, nothing else.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, as_json: bool) -> None:
    """edgeport: compress, export, calibrate, verify and profile transformer models for edge targets."""
    if not debug:
        quiet_libraries()
    ctx.obj = State(debug, as_json)


def _with_options(func, options: list):
    """``func`` decorated with ``options`` in the order they are listed (as stacked decorators would)."""
    for option in reversed(options):
        func = option(func)
    return func


def _trust_pickle_option():
    return click.option("--trust-pickle", is_flag=True, default=None,
                        help="Read a model folder's pickled pytorch_model.bin (only for files you trust; "
                             "converting to safetensors is better).")


def _export_options(func):
    options = [
        click.option("--target", "-t", "targets", default=",".join(DEFAULT_TARGETS), show_default=True,
                     help="Comma-separated targets (see `edgeport targets`)."),
        click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
                     help="Run folder (default: runs/<model name>)."),
        click.option("--calib", type=click.Path(path_type=Path), help="Calibration texts: .txt, .jsonl, .tsv, .csv "
                     "(default: the built-in English set)."),
        click.option("--calib-size", type=int, help="Sample this many calibration texts (seeded)."),
        click.option("--task", type=click.Choice(TASKS), help="The model's task, where not the one detected "
                     "from its folder (e.g. text-pair-classification for a sequence classifier fed pairs)."),
        click.option("--text-column", "--text-field", "text_column", help="Text column/field of --calib/--eval."),
        click.option("--text-pair-column", "--text-pair-field", "text_pair_column",
                     help="Second text of a pair in --calib/--eval (sentence pairs; question answering: the "
                          "context, with --text-column the question)."),
        click.option("--label-column", help="Label column/field of --eval."),
        click.option("--eval", "eval_path", type=click.Path(path_type=Path),
                     help="Labelled eval data (classifiers): accuracy of fp32 and of each artifact."),
        click.option("--min-fidelity", type=float, default=None,
                     help="Budget: mean cosine (or top-1 agreement) vs fp32 [default 0.995; 0 disables]."),
        click.option("--max-drop", type=float, help="Budget: accuracy points lost on --eval."),
        click.option("--budget-data", type=click.Path(path_type=Path), help="Labelled data the budget chooses "
                     "fallback layers on (same columns as --eval) [half of --eval, label-stratified]; "
                     "--eval then reports on data no choice saw."),
        click.option("--granularity", type=click.Choice(["role", "layer"]), default=None,
                     help="Fallback unit for the budget [default role]."),
        click.option("--batch", type=int, help="Profile batch size [1]."),
        click.option("--sequence", type=int, help="Profile sequence length [128]."),
        click.option("--runs", type=int, help="Timed runs [100]."),
        click.option("--threads", type=int, help="Threads [all cores]."),
        click.option("--no-profile", is_flag=True, help="Skip latency and memory profiling."),
        click.option("--device", help="Also profile on this device: ssh://user@host[:port] or adb://SERIAL "
                     "(keys from ssh-agent/~/.ssh, host keys from ~/.ssh/known_hosts)."),
        click.option("--option", "target_options", multiple=True, metavar="TARGET.KEY=VALUE",
                     help="A target option, e.g. onnx-int8.mode=static (VALUE null: unset)."),
    ]
    return _with_options(func, options)


def _recipe_from_flags(model: str, flags: dict):
    """Map CLI flags onto the recipe schema (the one source of defaults). A command passes
    the flags it has; absent or unset ones keep the schema's defaults."""
    from edgeport.recipe import recipe_from_dict

    flag = flags.get
    data: dict = {"model": model}
    if flag("targets"):
        data["targets"] = flag("targets")
    if flag("task"):
        data["task"] = flag("task")
    calib = {}
    if flag("calib"):
        calib["data"] = {"path": flag("calib"), "text_column": flag("text_column"),
                         "text_pair_column": flag("text_pair_column")}
    if flag("calib_size") is not None:
        calib["size"] = flag("calib_size")
    data["calibration"] = calib
    if flag("eval_path"):
        data["eval"] = {"path": flag("eval_path"), "text_column": flag("text_column"),
                        "text_pair_column": flag("text_pair_column"), "label_column": flag("label_column")}
    budget = {k: flag(k) for k in ("min_fidelity", "max_drop", "granularity") if flag(k) is not None}
    if flag("budget_data"):
        budget["data"] = {"path": flag("budget_data"), "text_column": flag("text_column"),
                          "text_pair_column": flag("text_pair_column"), "label_column": flag("label_column")}
    data["budget"] = budget
    profile = {k: flag(k) for k in ("batch", "sequence", "runs", "threads", "device") if flag(k) is not None}
    profile["enabled"] = not flag("no_profile", False)
    data["profile"] = profile
    data["target_options"] = _target_options(flag("target_options") or ())
    if flag("trust_pickle"):
        data["trust_pickle"] = True
    return recipe_from_dict(data, names=FLAG_NAMES)


FLAG_NAMES = {  # recipe fields -> the flags that set them, for error messages
    "calibration.size": "--calib-size", "calibration.data.path": "--calib", "eval.path": "--eval",
    "budget.min_fidelity": "--min-fidelity", "budget.max_drop": "--max-drop", "profile.batch": "--batch",
    "profile.sequence": "--sequence", "profile.runs": "--runs", "profile.threads": "--threads",
    "targets": "--target", "budget.data.path": "--budget-data",
}


def _target_options(items: tuple[str, ...]) -> dict[str, dict]:
    options: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        target, dot, name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--option '{item}' is not TARGET.KEY=VALUE", hint="e.g. --option onnx-int8.mode=static")
        options.setdefault(target, {})[name] = None if value.lower() == "null" else value
    return options


def _default_out(model: str) -> Path:
    """runs/<name>: the model's own folder name, made safe (a reference such as `..`, `/` or
    `../../etc` never leads the run folder out of runs/)."""
    path = Path(model).expanduser()
    name = (path.resolve().name if path.exists() else path.name).strip()
    name = re.sub(r"[^\w.+-]", "_", name).lstrip(".")
    return Path("runs") / (name or "model")


@contextlib.contextmanager
def _claim(out: Path, create: bool = True):
    """Hold the run folder's lock while the command writes to it."""
    from edgeport.runs import run_lock

    with run_lock(Path(out), create=create):
        yield


def _summary(document: dict) -> str:
    from edgeport.report.table import markdown

    return markdown(document)


def _finish(state: State, results, out: Path) -> None:
    """Print the results; a budget that no configuration met is an error (exit 5), raised
    after the closest artifacts and the results were written."""
    from edgeport.errors import BudgetNotMetError

    document = results.document()
    state.ui.info(f"run folder: {out}  (report: {out / 'report.html'})")
    state.emit(document, _summary(document))
    missed = [name for name, entry in results.targets.items() if entry.fallback and not entry.fallback.met]
    if missed:
        raise BudgetNotMetError(
            f"budget not met by {', '.join(missed)}; the closest artifact was kept in {out}",
            hint="relax --min-fidelity/--max-drop, try --granularity layer, or give more natural calibration text")


@cli.command()
@click.argument("model")
@_export_options
@_trust_pickle_option()
@click.pass_obj
def export(state: State, model: str, **flags) -> None:
    """Export MODEL (a Hugging Face folder, or `minilm`) to each target; verify and profile.

    \b
    edgeport export minilm --target openvino-int8 --out runs/minilm
    edgeport export ./bert --target onnx-int8,openvino-fp16 --calib texts.txt --eval dev.tsv --json
    """
    from edgeport.stages.flow import run_export

    recipe = _recipe_from_flags(model, flags)
    out = flags["out"] or _default_out(model)
    with state.work(), _claim(out):
        document = run_export(recipe, out, state.ui)
    _finish(state, document, out)


@cli.command()
@click.argument("onnx_file", type=click.Path(path_type=Path))
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(path_type=Path), required=True,
              help="Folder of the model's tokenizer (and config.json, if at hand).")
@_export_options
@click.pass_obj
def build(state: State, onnx_file: Path, tokenizer_dir: Path, **flags) -> None:
    """Build targets from an ONNX file exported elsewhere (inputs inferred and validated).

    \b
    edgeport build model.onnx --tokenizer ./bert --target onnx-int8 --out runs/bert
    """
    from edgeport.stages.flow import run_from_onnx

    recipe = _recipe_from_flags(str(onnx_file), flags)
    out = flags["out"] or _default_out(onnx_file.stem)
    with state.work(), _claim(out):
        document = run_from_onnx(recipe, onnx_file, tokenizer_dir, out, state.ui)
    _finish(state, document, out)


@cli.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Run folder.")
@_trust_pickle_option()
@click.pass_obj
def run(state: State, recipe_path: Path, out: Path | None, trust_pickle: bool | None) -> None:
    """Run every stage a RECIPE (YAML, see recipes/) asks for."""
    from edgeport.recipe import recipe_from_yaml
    from edgeport.stages.flow import run_export

    recipe = recipe_from_yaml(recipe_path)
    if trust_pickle:
        recipe = recipe.model_copy(update={"trust_pickle": True})
    out = out or _default_out(recipe.model)
    with state.work(), _claim(out):
        document = run_export(recipe, out, state.ui)
    _finish(state, document, out)


@cli.command()
@click.argument("model")
@click.option("--recipe", "recipe_path", type=click.Path(path_type=Path), required=True,
              help="YAML with a `compress:` section (see recipes/).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Run folder; the model goes to RUN_DIR/compressed (default: runs/<model name>).")
@click.pass_obj
def compress(state: State, model: str, recipe_path: Path, out: Path | None) -> None:
    """Compress MODEL with a recipe's passes (pruning, low-rank, vocabulary, distillation).

    \b
    edgeport compress ../shared/models/minilm-sst2 --recipe recipes/sst2-tuned.yaml --out runs/sst2-tuned
    edgeport run recipes/sst2-tuned.yaml    # compress, then export, verify and profile
    """
    from edgeport.recipe import recipe_from_yaml
    from edgeport.runs import RunDir
    from edgeport.stages.compress import compress_stage

    recipe = recipe_from_yaml(recipe_path).model_copy(update={"model": model})
    out = out or _default_out(model)
    with state.work(), _claim(out):
        folder, report, cached = compress_stage(RunDir(out), recipe, state.ui)
    state.ui.info(f"compressed model: {folder}" + (" (cached)" if cached else ""))
    state.emit({"model": str(folder), "cached": cached, **report}, _compression_table(report))


def _compression_table(report: dict) -> str:
    from edgeport.report.table import compression_markdown

    return compression_markdown(report)


@cli.command()
@click.option("--model", "model_ref", help="Also say, per target, whether it handles this model's family and task.")
@click.option("--task", type=click.Choice(TASKS), help="The model's task, where not the detected one.")
@click.pass_obj
def targets(state: State, model_ref: str | None, task: str | None) -> None:
    """List targets: what is available on this machine, and why not.

    \b
    edgeport targets --model ./deberta-v3-reranker
    """
    from edgeport.model.load import kind_of_folder, path_from_ref
    from edgeport.targets.registry import describe_all

    family = None
    if model_ref:
        family, task = kind_of_folder(path_from_ref(model_ref), task)
    infos = describe_all(family.name if family else None, task)
    document: dict = {"targets": {}}
    if model_ref:
        document["model"] = {"ref": model_ref, "family": family.name, "task": task}
    lines = [f"model: {model_ref} ({family.name}, {task})"] if model_ref else []
    for i in infos:
        entry = {"runtime": i.runtime, "available": i.availability.available,
                 "reason": str(i.availability) if not i.availability.available else "",
                 "experimental": i.experimental, "options": i.options}
        status = str(i.availability)
        if i.availability.available and i.experimental:
            status = f"experimental: {i.experimental}"
        if i.handles is not None:
            entry["handles_model"] = i.handles.available
            entry["model_reason"] = i.handles.reason
            status += "" if i.handles.available else f"; {i.handles.reason}"
        document["targets"][i.name] = entry
        lines.append(f"{i.name:<18} {i.runtime:<30} {status}")
        lines += [f"    {key} ({o['type']}, default {o['default']!r}): {o['help']}" for key, o in i.options.items()]
    state.emit(document, "\n".join(lines))


@cli.command()
@click.pass_obj
def schema(state: State) -> None:
    """Print the JSON Schema of results.json (and of --json output)."""
    from edgeport.results import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.pass_obj
def report(state: State, run_dir: Path) -> None:
    """Rewrite report.md and report.html of RUN_DIR from its results.json."""
    from edgeport.stages.results_file import rewrite_report

    with _claim(run_dir, create=False):
        results = rewrite_report(run_dir)
    state.ui.info(f"wrote {run_dir / 'report.html'}")
    state.emit(results, _summary(results.document()))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--target", "-t", "targets", default="onnx-int8", show_default=True, help="Quantized targets.")
@click.option("--sensitivity", is_flag=True, help="Rank layer units by the fidelity lost when "
              "each alone is quantized (with the target's own runtime).")
@click.option("--granularity", type=click.Choice(["role", "layer"]), default="role", show_default=True)
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration texts [built-in set].")
@click.option("--calib-size", type=int)
@click.option("--text-column", "--text-field", "text_column")
@click.option("--text-pair-column", "--text-pair-field", "text_pair_column")
@click.option("--label-column")
@click.option("--eval", "eval_path", type=click.Path(path_type=Path), help="Labelled eval data (classifiers).")
@click.option("--option", "target_options", multiple=True, metavar="TARGET.KEY=VALUE")
@click.pass_obj
def calibrate(state: State, run_dir: Path, targets: str, sensitivity: bool, granularity: str, **flags) -> None:
    """Sensitivity of each layer unit of RUN_DIR's model for a target.

    \b
    edgeport calibrate runs/minilm --target onnx-int8 --sensitivity --granularity layer

    (TensorRT takes no calibration cache: tensorrt-int8 carries explicit Q/DQ.)
    """
    from edgeport.stages.calibrate import sensitivity as measure

    if not sensitivity:
        raise UsageError("say what to calibrate: --sensitivity",
                         hint="e.g. edgeport calibrate RUN_DIR --target onnx-int8 --sensitivity")

    recipe = _recipe_from_flags(str(run_dir), {**flags, "targets": targets, "no_profile": True})
    document: dict = {"sensitivity": {}}
    with state.work(), _claim(run_dir, create=False):
        document.update(measure(run_dir, recipe, granularity, state.ui))
    lines = []
    for name, rows in document["sensitivity"].items():
        lines.append(f"{name}: fidelity loss when each unit alone is quantized (worst first)")
        lines += [f"  {i + 1:>2}. {row['unit']:<44} loss {row['loss']:.6f}  mean cos {row['mean_cosine']:.5f}"
                  for i, row in enumerate(rows)]
    state.emit(document, "\n".join(lines))


def _connection_options(func):
    options = [
        click.option("--host", help="user@host[:port] of a catalog device reached over SSH (or an adb serial)."),
        click.option("--identity", type=click.Path(path_type=Path), help="SSH private key file [agent/default keys]."),
        click.option("--known-hosts", type=click.Path(path_type=Path),
                     help="known_hosts file to verify (and, with --trust-new-host-key, record) host keys."),
        click.option("--trust-new-host-key", is_flag=True,
                     help="Accept an UNKNOWN host key (a changed key is always refused)."),
        click.option("--remote-python", help="Python on the device that has the runtime [catalog's, else python3]."),
    ]
    return _with_options(func, options)


def _connection(flags: dict):
    from edgeport.devices.catalog import Connection

    return Connection(host=flags.pop("host"), identity=str(flags.pop("identity") or "") or None,
                      known_hosts=str(flags.pop("known_hosts") or "") or None,
                      trust_new_host_key=flags.pop("trust_new_host_key"), python=flags.pop("remote_python"))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--target", "-t", "targets", default=None, help="Targets to profile (default: all built).")
@click.option("--device", default=None, help="Where: this machine (default), ssh://user@host[:port], adb://SERIAL, "
              "or a catalog name (see `edgeport devices list`).")
@_connection_options
@click.option("--benchmark-binary", type=click.Path(path_type=Path), help="TFLite benchmark_model for Android.")
@click.option("--batch", type=int, help="Batch size [1].")
@click.option("--sequence", type=int, help="Sequence length [128].")
@click.option("--runs", type=int, help="Timed runs [100].")
@click.option("--warmup", type=int, help="Untimed runs first [10].")
@click.option("--threads", type=int, help="Threads [all cores].")
@click.option("--allow-cpu-fallback", is_flag=True, default=None,
              help="Where the GPU execution provider an artifact asks for cannot run, profile the CPU anyway "
              "(results say cpu_fallback: true) instead of failing.")
@click.option("--no-verify", is_flag=True, help="Skip running the run's report set through each artifact there "
              "(device_verification beside the host-side fidelity).")
@click.pass_obj
def profile(state: State, run_dir: Path, targets: str | None, device: str | None, no_verify: bool, **flags) -> None:
    """Profile built artifacts of RUN_DIR here or on a device, and verify them there (the
    report set through the artifact, compared with fp32); merge into results.json.

    \b
    edgeport profile runs/minilm --target onnx-int8 --device ssh://pi@10.0.0.7
    edgeport profile runs/minilm --device jetson-orin-nano --host nvidia@10.0.0.8
    edgeport profile runs/minilm --target tflite-int8 --device adb://SERIAL --benchmark-binary ./benchmark_model
    """
    from edgeport.recipe import ProfileSpec, validated
    from edgeport.stages.profile import profile_run

    connection = _connection(flags)
    spec = validated(ProfileSpec, {"device": device, **{k: v for k, v in flags.items() if v is not None}})
    with state.work(), _claim(run_dir, create=False):
        results = profile_run(run_dir, targets, spec, state.ui, connection, verify=not no_verify)
    state.emit(results, _summary(results.document()))


def _ray_options(folder: str, resume: str):
    """--address, --out and --resume of the commands whose jobs run on Ray (sweep, tune)."""
    options = [
        click.option("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:PORT",
                     help="Join this Ray cluster (token from RAY_AUTH_TOKEN[_PATH]); default: an embedded local Ray."),
        click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
                     help=f"{folder.capitalize()} folder (default: runs/<{folder} file name>)."),
        click.option("--resume", is_flag=True, help=resume),
    ]
    return lambda func: _with_options(func, options)


@cli.command()
@click.argument("sweep_path", metavar="SWEEP.yaml", type=click.Path(path_type=Path))
@_ray_options("sweep", "Continue the sweep in --out: rerun only its failed or missing jobs.")
@click.pass_obj
def sweep(state: State, sweep_path: Path, address: str | None, out: Path | None, resume: bool) -> None:
    """Run every job of a sweep (recipes x targets x budgets x devices) on Ray; one Pareto report.

    \b
    edgeport sweep sweeps/minilm.yaml --out runs/minilm-sweep
    edgeport sweep lab.yaml --address 10.0.0.2:6379 --resume
    """
    from edgeport.sweep.report import markdown
    from edgeport.sweep.run import raise_for_failures, run_sweep

    out = out or _default_out(sweep_path.stem)
    with state.work():
        document = run_sweep(sweep_path, out, address, resume, state.ui)
    state.emit(document, markdown(document))
    raise_for_failures(document, out)


@cli.command()
@click.argument("tune_path", metavar="TUNE.yaml", type=click.Path(path_type=Path))
@click.option("--trials", type=click.IntRange(min=1), default=None, help="Trials in all [the tune file's trials:].")
@_ray_options("tune", "Continue the tune in --out: its finished trials join the new study.")
@click.pass_obj
def tune(state: State, tune_path: Path, trials: int | None, address: str | None, out: Path | None,
         resume: bool) -> None:
    """Search compression recipes under limits (accuracy drop, size, p50): trials chosen on a
    selection set carved from the training data, the front graded once on the recipe's eval set.

    \b
    edgeport tune recipes/sst2-tune.yaml --trials 12
    edgeport tune lab-tune.yaml --address 10.0.0.2:6379 --resume
    """
    from edgeport.tune.report import markdown
    from edgeport.tune.run import run_tune

    out = out or _default_out(tune_path.stem)
    with state.work():
        document = run_tune(tune_path, out, address, trials, resume, state.ui)
    state.emit(document, markdown(document))
    if document["best"] is None:
        from edgeport.errors import BudgetNotMetError

        closest = document["recipes"].get("closest")
        raise BudgetNotMetError("no trial met every limit on the selection set" +
                                (f"; the closest is kept: {closest}" if closest else ""),
                                hint=f"see {out / 'tune.md'}; loosen limits: and rerun with --resume (finished "
                                     "trials are judged again), or add trials")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--target", "-t", "target", required=True, help="The built target to run (e.g. onnx-int8).")
@click.option("--text", "texts", multiple=True, help="A text (repeatable).")
@click.option("--file", "texts_file", type=click.Path(path_type=Path), help="A file of texts, one per line.")
@click.option("--threads", type=int, help="Runtime threads [all cores].")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.pass_obj
def predict(state: State, run_dir: Path, target: str, texts: tuple[str, ...], texts_file: Path | None,
            threads: int | None, as_json: bool) -> None:
    """Embeddings or labels of texts from a built artifact, through edgeport.runtime.

    \b
    edgeport predict runs/minilm --target onnx-int8 --text "hello world"
    edgeport predict runs/sst2 --target openvino-int8 --file reviews.txt --json | jq .labels
    """
    from edgeport.stages.predict import predict_texts

    state.as_json = state.as_json or as_json
    document = predict_texts(Path(run_dir), target, list(texts), texts_file, threads)
    for warning in document["warnings"]:
        state.ui.warn(warning)
    state.emit(document, _predict_lines(document))


def _predict_lines(document: dict) -> str:
    lines = []
    for i, text in enumerate(document["texts"]):
        shown = text if len(text) <= 48 else text[:45] + "..."
        if "labels" in document:
            label = document["labels"][i]
            lines.append(f"{label['label']:<12} {label['score']:.4f}  {shown}")
        else:
            vector = document["embeddings"][i]
            head = " ".join(f"{v:+.4f}" for v in vector[:4])
            lines.append(f"[{len(vector)}] {head} ...  {shown}")
    return "\n".join(lines)


@cli.group()
def devices() -> None:
    """The device catalog, and checks of real devices."""


@devices.command("list")
@click.pass_obj
def devices_list(state: State) -> None:
    """List catalog devices and how each is reached."""
    from edgeport.devices.catalog import load_catalog

    catalog = load_catalog()
    document = {"devices": {name: entry.model_dump() for name, entry in catalog.items()}}
    lines = [f"{e.name:<18} {e.transport:<6} {e.arch:<8} {', '.join(e.targets)}" for e in catalog.values()]
    state.emit(document, "\n".join(lines))


@devices.command("check")
@click.argument("device")
@_connection_options
@click.pass_obj
def devices_check(state: State, device: str, **flags) -> None:
    """Reach DEVICE and report OS, arch, CPU, memory, runtimes and native tools."""
    from edgeport.devices.remote_profile import probe

    with state.work():
        info = probe(device, _connection(flags))
    lines = [f"{k}: {v}" for k, v in info.items()]
    state.emit(info, "\n".join(lines))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same unwinding as Ctrl-C."""


def _on_signal(signum, _frame) -> None:
    from edgeport.runs import interrupt

    interrupt(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())


@contextlib.contextmanager
def _signals_unwind():
    """While a command runs, SIGTERM and SIGINT raise in the main thread (after any stage
    swap in progress), so that every ``finally`` and temporary folder cleans up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        from edgeport.runs import forget_pending_interrupt

        forget_pending_interrupt()


def main(argv: list[str] | None = None) -> int:
    with _signals_unwind():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="edgeport", standalone_mode=False)
    except EdgeportError as exc:
        if debug:
            raise
        click.echo(f"error: {_one_line(exc.message)}", err=True)
        if exc.hint:
            click.echo(f"hint: {_one_line(exc.hint)}", err=True)
        return exc.exit_code
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt (and so SIGTERM) into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted(exc.__cause__)
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except OSError as exc:  # a full disk is the user's to fix; any other OSError that got here is a bug
        if debug:
            raise
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _internal_error(exc)
        where = f" while writing '{exc.filename}'" if exc.filename else ""
        click.echo(f"error: no space left on the device{where}", err=True)
        click.echo("hint: free some space, or pass another --out; the stages finished before are kept", err=True)
        return 3
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:  # a bug: say so plainly, without a traceback unless --debug
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:  # e.g. a C extension's import that the signal broke off: ImportError
            return _interrupted(interrupt)
        if debug:
            raise
        return _internal_error(exc)
    return 0


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM an exception was raised in answer to, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _interrupted(exc: KeyboardInterrupt) -> int:
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    click.echo(f"{what}: finished stages are kept, nothing half-written was left in place and temporary "
               "files were removed; run the command again to continue", err=True)
    return 143 if isinstance(exc, Terminated) else 130


def _internal_error(exc: BaseException) -> int:
    click.echo(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
    click.echo("hint: run again with --debug and report the traceback", err=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
