#!/usr/bin/env python3
"""The same artifact profiled locally and through SSH on 127.0.0.1 (same CPU), alternating,
to check that the device path (push, agent, JSON back) measures what local profiling does.

    python bench/ssh_vs_local.py [--rounds 5] [--runs 200]

Needs sshd (make test installs openssh-server). Writes bench/results/ssh_vs_local.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.sshd_helpers

from _results import write_results  # noqa: E402
from edgeport.devices.local_profile import profile_local  # noqa: E402
from edgeport.devices.remote_profile import profile_remote  # noqa: E402
from edgeport.recipe import recipe_from_dict  # noqa: E402
from edgeport.stages.flow import run_export  # noqa: E402
from edgeport.ui import UI, quiet_libraries  # noqa: E402
from tests.sshd_helpers import start_sshd  # noqa: E402



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-x86/default"))
    args = parser.parse_args()
    quiet_libraries()
    doc = run_export(recipe_from_dict({"model": "minilm", "targets": ["onnx-int8"], "profile": {"enabled": False}}),
                     args.work, UI())
    artifact = Path(doc["targets"]["onnx-int8"]["artifact"])
    with tempfile.TemporaryDirectory() as tmp:
        sshd = start_sshd(Path(tmp) / "sshd")
        try:
            connection = {"identity": str(sshd.client_key), "known_hosts": str(sshd.known_hosts),
                          "python": sys.executable}
            local, remote = [], []
            for _ in range(args.rounds):
                local.append(profile_local(artifact, runs=args.runs, warmup=20)["latency_ms"]["p50"])
                remote.append(profile_remote(artifact, sshd.url, {"runs": args.runs, "warmup": 20},
                                             connection)["latency_ms"]["p50"])
        finally:
            sshd.stop()
    ratio = statistics.median(remote) / statistics.median(local)
    result = {"artifact": "minilm onnx-int8", "rounds": args.rounds, "runs": args.runs,
              "local_p50_ms": local, "ssh_p50_ms": remote, "ssh_over_local": ratio}
    md = ["| path | median p50 ms | rounds (p50 ms) |", "|---|---:|---|",
          f"| local agent | {statistics.median(local):.2f} | {', '.join(f'{v:.2f}' for v in local)} |",
          f"| ssh://127.0.0.1 agent | {statistics.median(remote):.2f} | {', '.join(f'{v:.2f}' for v in remote)} |",
          "", f"SSH / local = {ratio:.3f} (goal: within 20%)"]
    write_results("ssh_vs_local", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
