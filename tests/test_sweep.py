"""`edgeport sweep` on real Ray: expansion and content keys (pure), an embedded sweep end to end
with a failing cell and a resume, and a two-node local cluster (`ray start` on 127.0.0.1) whose
worker holds the only board, killed mid-sweep.

The "board" of these tests is a stand-in: a device named `loopback` whose access is `local`
(this machine, profiled with the same agent as any board), declared as the Ray resource
`device:loopback` by one node only, so where its jobs run is what the tests check."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from edgeport.errors import UsageError
from edgeport.sweep.folder import finished
from edgeport.sweep.report import pareto
from edgeport.runs import hash_path
from edgeport.sweep.spec import INPUT_PREFIX, expand, job_recipe, sweep_from_dict
from tests.conftest import real_component_missing

pytest.importorskip("ray", reason=real_component_missing("Ray is not installed (the sweep extra)"))

RAY = str(Path(sys.executable).parent / "ray")


def _sweep(model: Path, **extra) -> dict:
    data = {"name": "tiny", "recipe": {"model": str(model), "calibration": {"size": 16},
                                       "profile": {"enabled": False, "runs": 3, "warmup": 1, "sequence": 16}},
            "axes": {"targets": ["onnx-fp32", "onnx-int8"],
                     "target_options": {"onnx-int8": [{}, {"mode": "bogus"}]},  # the second: a bad cell (exit 2)
                     "devices": ["loopback"]},
            "devices": {"loopback": {"device": "local"}}}
    data.update(extra)
    return data


def _write(tmp: Path, data: dict) -> Path:
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- pure: expansion, content keys, Pareto

def test_expansion_and_content_keys(tiny_models, tmp_path):
    model = tiny_models("bert")
    spec = sweep_from_dict({"recipe": {"model": str(model)},
                            "axes": {"targets": ["onnx-fp32", "onnx-int8"],
                                     "budgets": [{"min_fidelity": 0.99}, {"min_fidelity": 0.995}],
                                     "devices": [None, "board"]},
                            "devices": {"board": {"device": "local"}}})
    plan = expand(spec, tmp_path)
    assert len(plan.jobs) == 2 * 2 * 2 and len({j.key for j in plan.jobs}) == 8
    assert [j.key for j in expand(spec, tmp_path).jobs] == [j.key for j in plan.jobs]  # stable
    job = plan.jobs[0]
    assert job.recipe["targets"] == ["onnx-fp32"] and job.recipe["model"].startswith(INPUT_PREFIX)
    assert list(plan.inputs.values()) == [model.resolve()] and job.inputs == tuple(plan.inputs)
    assert json.loads(job.to_json())["key"] == job.key  # a job travels as JSON

    # content-addressed: the same model bytes elsewhere give the same keys; other bytes do not
    moved = shutil.copytree(model, tmp_path / "elsewhere")
    spec_moved = spec.model_copy(update={"recipe": {"model": str(moved)}})
    assert [j.key for j in expand(spec_moved, tmp_path).jobs] == [j.key for j in plan.jobs]
    (moved / "config.json").write_text((moved / "config.json").read_text().replace("\n", "\n "))
    assert not {j.key for j in expand(spec_moved, tmp_path).jobs} & {j.key for j in plan.jobs}


def test_every_data_file_of_a_recipe_travels_as_an_input(tiny_models, tmp_path, sst_like):
    """Eval, calibration, compress and budget data are shipped by content, not by local path."""
    model = tiny_models("bert", "text-classification")
    data = {"path": str(sst_like), "label_column": "label"}
    spec = sweep_from_dict({"recipe": {"model": str(model), "eval": data, "calibration": {"data": data},
                                       "budget": {"data": data, "max_drop": 1.0, "min_fidelity": None}},
                            "axes": {"targets": ["onnx-int8"]}})
    (job,) = expand(spec, tmp_path).jobs
    sha = hash_path(sst_like)
    for path in (job.recipe["eval"]["path"], job.recipe["calibration"]["data"]["path"],
                 job.recipe["budget"]["data"]["path"]):
        assert path == f"{INPUT_PREFIX}{sha}/{sst_like.name}"
    recipe = job_recipe(job.recipe, tmp_path / "inputs")
    assert recipe.budget.data.path == tmp_path / "inputs" / sha / sst_like.name


def test_a_recipe_file_named_by_the_sweep_is_read_as_edgeport_run_reads_it(tiny_models, tmp_path, sst_like):
    """Its paths are relative to the recipe file, not to the sweep file; a file that is not a
    mapping is refused, not read as an empty recipe."""
    model = tiny_models("bert", "text-classification")
    folder = tmp_path / "recipes"
    folder.mkdir()
    shutil.copy(sst_like, folder / "dev.tsv")
    (folder / "r.yaml").write_text(yaml.safe_dump({"model": str(model),
                                                   "eval": {"path": "dev.tsv", "label_column": "label"}}))
    (job,) = expand(sweep_from_dict({"recipe": "recipes/r.yaml", "axes": {"targets": ["onnx-int8"]}}), tmp_path).jobs
    assert job.recipe["eval"]["path"] == f"{INPUT_PREFIX}{hash_path(sst_like)}/dev.tsv"
    (folder / "list.yaml").write_text("- onnx-int8\n")
    with pytest.raises(UsageError, match="must be a YAML mapping"):
        expand(sweep_from_dict({"recipe": "recipes/list.yaml", "axes": {"targets": ["onnx-int8"]}}), tmp_path)


def test_sweep_file_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="devices: section"):
        expand(sweep_from_dict({"axes": {"targets": ["onnx-fp32"], "devices": ["orin"]}}), tmp_path)
    with pytest.raises(UsageError, match="axes.devices"):
        expand(sweep_from_dict({"recipe": {"profile": {"device": "ssh://pi@x"}}, "axes": {"targets": ["onnx-fp32"]}}),
               tmp_path)
    with pytest.raises(UsageError, match="invalid sweep option axes.targets"):
        sweep_from_dict({"axes": {"targets": []}})
    with pytest.raises(UsageError, match="does not exist"):
        expand(sweep_from_dict({"recipe": {"model": "nope"}, "axes": {"targets": ["onnx-fp32"]}}), tmp_path)


def test_progress_speaks_while_long_jobs_run():
    from edgeport.sweep.engine import _Progress

    said = []

    class Lines:
        def info(self, message):
            said.append(message)

    progress = _Progress(3, Lines())
    progress.tick(2)
    assert said == []  # not yet: once every every_s seconds
    progress.every_s = 0.0
    progress.tick(2)
    progress.tick(0)  # nothing in flight: nothing to say
    assert len(said) == 1 and "0/3 done, 2 in flight" in said[0]


def test_pareto_front_over_four_axes():
    points = {"fast": (0.99, 1.0, 10.0, 100.0), "good": (0.999, 3.0, 10.0, 100.0),
              "dominated": (0.98, 2.0, 12.0, 120.0), "small": (0.97, 4.0, 2.0, 100.0),
              "twin": (0.99, 1.0, 10.0, 100.0), "lean": (0.97, 4.0, 3.0, 50.0)}
    assert pareto(points) == ["fast", "good", "lean", "small", "twin"]
    # an axis not measured for a point (None) is left out of its comparisons
    assert pareto({"a": (0.99, 1.0, 10.0, None), "b": (0.98, 2.0, 10.0, 50.0)}) == ["a"]


# -- embedded Ray end to end

class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.add(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs["src"])


def _check_front(document: dict) -> None:
    """Recompute each device's front from the jobs' metrics, by brute force."""
    for device, front in document["pareto"].items():
        pts = {j["key"]: (j["metrics"]["quality"], j["metrics"]["profiles"][device]["p50_ms"], j["metrics"]["size_mb"],
                          j["metrics"]["profiles"][device]["peak_rss_mb"])
               for j in document["jobs"] if j["status"] == "done" and device in j["metrics"]["profiles"]}
        for key, p in pts.items():
            dominated = any(o[0] >= p[0] and all(a <= b for a, b in zip(o[1:], p[1:])) and o != p for o in pts.values())
            assert (key in front) == (not dominated)


@pytest.fixture(scope="module")
def embedded(tiny_models, tmp_path_factory):
    """One embedded sweep (3 jobs, one bad cell) run through the CLI; its folder and exit code."""
    from edgeport.cli import main

    tmp = tmp_path_factory.mktemp("sweep")
    path = _write(tmp, _sweep(tiny_models("bert")))
    home = set(Path.home().iterdir())
    code = main(["sweep", str(path), "--out", str(tmp / "out")])
    return {"path": path, "out": tmp / "out", "code": code, "home_added": set(Path.home().iterdir()) - home}


def test_embedded_sweep_writes_report_and_keeps_going_after_a_bad_cell(embedded):
    out = embedded["out"]
    assert embedded["code"] == 2  # the first failed job's exit code (the bad onnx-int8 mode)
    document = json.loads((out / "sweep.json").read_text())
    assert document["schema"] == "edgeport-sweep/1" and document["engine"]["mode"] == "embedded"
    assert document["status"] == "incomplete" and document["counts"]["done"] == 2 and document["counts"]["failed"] == 1
    failed = next(j for j in document["jobs"] if j["status"] == "failed")
    assert failed["error"]["exit_code"] == 2 and "bogus" in failed["error"]["message"]
    for job in (j for j in document["jobs"] if j["status"] == "done"):
        folder = Path(job["folder"])
        assert job["ran_on"]["profile"]["node_id"] == job["ran_on"]["build"]["node_id"]  # one node
        results = json.loads((folder / "results.json").read_text())
        (target, entry), = results["targets"].items()
        assert Path(entry["artifact"]) == folder / "targets" / target and (folder / "targets" / target).is_dir()
        assert entry["profiles"]["loopback"]["latency_ms"]["p50"] > 0
        assert job["files"] and finished(out, _job_of(embedded["path"], job["key"])) is not None
    assert set(document["pareto"]) == {"loopback"} and document["pareto"]["loopback"]
    _check_front(document)
    page = _Page()
    page.feed((out / "sweep.html").read_text())
    assert "chart-loopback" in page.ids and "device-loopback" in page.ids and "jobs" in page.ids
    assert any(src.startswith("data:image/png;base64,") and len(src) > 2000 for src in page.images)
    assert "## loopback" in (out / "sweep.md").read_text()
    # nothing of Ray left behind: no ~/.ray, no token, no Ray temp folder
    assert not any(p.name == ".ray" for p in embedded["home_added"]) and not (out / ".engine").exists()


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason=real_component_missing("chromium is not installed (make test installs it as root)"))
def test_sweep_report_renders_in_headless_chromium(embedded, tmp_path):
    from PIL import Image

    from tests.test_report_browser import _chromium

    page = (embedded["out"] / "sweep.html").as_uri()
    dom = _chromium(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0 and 'id="chart-loopback"' in dom.stdout
    assert not [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    shot = tmp_path / "sweep.png"
    assert _chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", page).returncode == 0
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # the chart drew (a page of text has far fewer colours)


def _job_of(path: Path, key: str):
    from edgeport.sweep.spec import read_sweep

    return next(j for j in expand(read_sweep(path), path.parent).jobs if j.key == key)


def test_resume_reruns_only_the_failed_job(embedded, run_cli):
    out = embedded["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "jobs").glob("*/job.json")}
    code, stdout, _ = run_cli("--json", "sweep", embedded["path"], "--out", out, "--resume")
    assert code == 2
    document = json.loads((out / "sweep.json").read_text())
    assert json.loads(stdout) == document  # --json prints sweep.json
    done = [j for j in document["jobs"] if j["status"] == "done"]
    assert len(done) == 2 and all(j["cached"] for j in done)
    for job in done:  # untouched
        path = Path(job["folder"]) / "job.json"
        assert path.stat().st_mtime_ns == before[path]
    assert document["history"][-1]["ran"] == 1 and len(document["history"]) == 2


def test_resume_refuses_a_changed_sweep(embedded, run_cli, tmp_path):
    data = yaml.safe_load(embedded["path"].read_text())
    data["axes"]["budgets"] = [{"min_fidelity": 0.9}]
    code, _, err = run_cli("sweep", _write(tmp_path, data), "--out", embedded["out"], "--resume")
    assert code == 2 and "another sweep file" in err


class _BrokenBoard:
    """A stand-in for a board that fails its check: a TCP port on loopback that accepts an SSH
    connection and closes it at once (no banner), counting how often it was reached."""

    def __init__(self):
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port, self.reached = self.sock.getsockname()[1], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.reached += 1
            conn.close()


def test_a_board_that_fails_is_tried_once_and_its_other_jobs_are_marked(tiny_models, tmp_path, run_cli):
    board = _BrokenBoard()
    try:
        data = _sweep(tiny_models("bert"), devices={"broken": {"device": f"ssh://nobody@127.0.0.1:{board.port}"}})
        data["axes"] = {"targets": ["onnx-fp32"], "devices": ["broken"],
                        "budgets": [{"min_fidelity": 0.9}, {"min_fidelity": 0.95}, {"min_fidelity": 0.99}]}
        code, _, err = run_cli("sweep", _write(tmp_path, data), "--out", tmp_path / "out")
    finally:
        board.sock.close()
    document = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert code == 6, err
    errors = [j["error"] for j in document["jobs"]]
    assert len(errors) == 3 and all(e and e["exit_code"] == 6 for e in errors)
    first = [e for e in errors if "failed earlier in this sweep" not in e["message"]]
    assert len(first) == 1 and "127.0.0.1" in first[0]["message"]
    assert all(first[0]["message"] in e["message"] for e in errors)  # the others name the board's first error
    assert board.reached == 1  # the board was reached once, not once per job
    assert err.count("warning: device broken failed") == 1, err  # one warning for the board


# -- a two-node cluster started with `ray start` on loopback

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A head (1 CPU) and a worker (1 CPU, the only `device:loopback`), each `ray start --block`
    in its own process group, so a node is killed whole without touching any other Ray."""

    def __init__(self, folder: Path):
        self.folder = folder
        token = folder / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_AUTH_TOKEN", None)
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(f"/tmp/ep-rc-{secrets.token_hex(3)}")
        self.head = self._start("head", "--head", f"--port={self.port}", "--include-dashboard=false",
                                f"--temp-dir={self.temp}")
        self.worker = None

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "a")
        return subprocess.Popen([RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                 "--object-store-memory=100000000", f"--dashboard-agent-listen-port={_free_port()}",
                                 f"--metrics-export-port={_free_port()}", *args],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self, wait: bool = True) -> None:
        self.worker = self._start("worker", f"--address={self.address}", '--resources={"device:loopback": 1}')
        if wait:
            self.wait_for(lambda r: r.get("device:loopback") == 1)

    def resources(self) -> dict:
        done = subprocess.run([sys.executable, "-c", "import json, ray; ray.init(address='%s', logging_level='error');"
                               "print(json.dumps(ray.available_resources() | {'_total': ray.cluster_resources()}))"
                               % self.address], env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode:
            return {}
        return json.loads(done.stdout.strip().splitlines()[-1])["_total"]

    def wait_for(self, condition, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.resources()):
                return
            time.sleep(1)
        raise AssertionError(f"cluster not ready; see {self.folder}")

    @staticmethod
    def kill(process: subprocess.Popen | None) -> None:
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(self.worker)
        self.kill(self.head)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(folder)
    try:
        cluster.start_worker()
        yield cluster
    finally:
        cluster.stop()


def _worker_node(document: dict) -> str:
    return next(n["node_id"] for n in document["engine"]["nodes"] if n["resources"].get("device:loopback"))


@pytest.mark.ray
def test_cluster_runs_device_jobs_on_the_node_that_holds_the_device(cluster, embedded, run_cli, monkeypatch, tmp_path):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(name, cluster.env[name])
    code, _, err = run_cli("sweep", embedded["path"], "--out", tmp_path / "out", "--address", cluster.address)
    assert code == 2, err
    document = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert document["engine"]["mode"] == "cluster" and len(document["engine"]["nodes"]) == 2
    worker = _worker_node(document)
    local = json.loads((embedded["out"] / "sweep.json").read_text())
    assert [j["key"] for j in document["jobs"]] == [j["key"] for j in local["jobs"]]  # same content keys
    for job, twin in zip(document["jobs"], local["jobs"]):
        assert job["status"] == twin["status"]
        if job["status"] == "done":
            assert job["ran_on"]["profile"]["node_id"] == worker
            # the same artifact bytes (manifest.json differs only by its timings)
            files, twins = ({f["path"]: f["sha256"] for f in j["files"] if not f["path"].endswith("manifest.json")}
                            for j in (job, twin))
            assert files and files == twins


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.ray
def test_killing_the_worker_mid_sweep_keeps_finished_jobs(cluster, tiny_models, tmp_path):
    data = _sweep(tiny_models("bert"), devices={"loopback": {"device": "local", "cooldown_s": 8}})
    data["axes"] = {"targets": ["onnx-fp32"], "budgets": [{"min_fidelity": 0.9}, {"min_fidelity": 0.95}],
                    "devices": ["loopback"]}
    data["device_wait_s"] = 90
    path, out = _write(tmp_path, data), tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "edgeport.cli", "sweep", str(path), "--out", str(out),
                              "--address", cluster.address], env=cluster.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        def first_done():
            if not (out / "sweep.json").is_file():
                return None
            jobs = json.loads((out / "sweep.json").read_text())["jobs"]
            return [j for j in jobs if j["status"] == "done"] or None

        done = _wait(first_done, 240, "a first finished job")[0]
        cluster.kill(cluster.worker)  # the board's node dies while the other job holds or waits for the board
        cluster.start_worker(wait=False)  # and rejoins; the waiting device job is scheduled when it is up
        _, stderr = sweep.communicate(timeout=240)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    document = json.loads((out / "sweep.json").read_text())
    assert sweep.returncode in (0, 7), stderr
    assert document["counts"]["pending"] == 0
    kept = next(j for j in document["jobs"] if j["key"] == done["key"])
    assert kept["status"] == "done" and finished(out, _job_of(path, kept["key"])) is not None
    other = next(j for j in document["jobs"] if j["key"] != done["key"])
    print(f"job in flight when its node was killed: {other['status']} {other['error'] or other['ran_on']}")
    if other["status"] == "done":  # retried after the node rejoined: on the new worker
        assert other["ran_on"]["profile"]["node_id"] != done["ran_on"]["profile"]["node_id"]
        assert sweep.returncode == 0
    else:
        assert other["error"]["exit_code"] == 7 and other["error"]["message"]


def test_shipped_sweeps_expand():
    from edgeport.sweep.spec import read_sweep

    shipped = sorted((Path(__file__).parents[1] / "sweeps").glob("*.yaml"))
    assert shipped
    for path in shipped:
        plan = expand(read_sweep(path), path.parent)
        assert len(plan.jobs) == 6 and len({job.key for job in plan.jobs}) == 6
