"""Reports of a run: results.json (results.py), report.md for CI logs, report.html for people."""
