#!/usr/bin/env python3
"""The same artifact profiled locally and through SSH on 127.0.0.1 (same CPU), alternating,
to check that the device path (push, agent, JSON back) measures what local profiling does.

    python bench/ssh_vs_local.py [--rounds 5] [--runs 200] [--min-fidelity C]

(``--min-fidelity 0`` builds the fully quantized artifact: no budget trials, the same
comparison; the artifact's budget is recorded.)

Needs sshd (make test installs openssh-server). Writes bench/results/ssh_vs_local.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _results import provenance_line, write_results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--min-fidelity", type=float, default=None, help="the artifact's budget [edgeport's default]")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-x86/default"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.sshd_helpers
    from edgeport.devices.catalog import Connection
    from edgeport.devices.local_profile import profile_local
    from edgeport.devices.remote_profile import profile_remote
    from edgeport.recipe import ProfileSpec, recipe_from_dict
    from edgeport.stages.flow import run_export
    from edgeport.ui import UI, quiet_libraries
    from tests.sshd_helpers import start_sshd

    quiet_libraries()
    recipe = {"model": "minilm", "targets": ["onnx-int8"], "profile": {"enabled": False}}
    if args.min_fidelity is not None:
        recipe["budget"] = {"min_fidelity": args.min_fidelity}
    results = run_export(recipe_from_dict(recipe), args.work, UI())
    artifact = Path(results.targets["onnx-int8"].artifact)
    spec = ProfileSpec(runs=args.runs, warmup=20)
    with tempfile.TemporaryDirectory() as tmp:
        sshd = start_sshd(Path(tmp) / "sshd")
        try:
            connection = Connection(identity=str(sshd.client_key), known_hosts=str(sshd.known_hosts),
                                    python=sys.executable)
            local, remote = [], []
            for _ in range(args.rounds):
                local.append(profile_local(artifact, spec).latency_ms.p50)
                remote.append(profile_remote(artifact, sshd.url, spec, connection).latency_ms.p50)
        finally:
            sshd.stop()
    budget = results.targets["onnx-int8"].fallback
    write_results("ssh_vs_local", {"artifact": "minilm onnx-int8", "budget": budget.budget if budget else None,
                                   "batch": 1, "sequence": 128,
                                   "rounds": args.rounds, "runs": args.runs,
                                   "local_p50_ms": local, "ssh_p50_ms": remote}, render)
    return 0


def render(document: dict) -> list[str]:
    local, remote = document["local_p50_ms"], document["ssh_p50_ms"]
    ratio = statistics.median(remote) / statistics.median(local)
    return [provenance_line(document, "bench/ssh_vs_local.py"), "",
            f"{document['artifact']}, batch {document.get('batch', 1)} x {document.get('sequence', 128)}, "
            f"{document['rounds']} rounds x {document['runs']} runs, alternating.", "",
            "| path | median p50 ms | rounds (p50 ms) |", "|---|---:|---|",
            f"| local agent | {statistics.median(local):.2f} | {', '.join(f'{v:.2f}' for v in local)} |",
            f"| ssh://127.0.0.1 agent | {statistics.median(remote):.2f} | {', '.join(f'{v:.2f}' for v in remote)} |",
            "", f"SSH / local = {ratio:.3f} (goal: within 20%)"]

if __name__ == "__main__":
    sys.exit(main())
