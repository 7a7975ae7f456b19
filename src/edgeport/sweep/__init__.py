"""`edgeport sweep`: recipes x targets x budgets x devices as jobs on Ray, one Pareto report.

spec.py (sweep file -> jobs with content keys), job.py (what a job runs, Ray-free),
engine.py (Ray: embedded or joined, tasks, device leases, retries), folder.py (the sweep
folder, job run folders, reuse), report.py (sweep.json/md/html, Pareto fronts), run.py."""
