"""Benchmarks that prove or correct the design document's claims; ``python -m bench.run_all`` runs them.

Each script measures its baseline and its subject in the same run and prints medians and ratios;
bench/README.md keeps the latest figures and the machine they came from.
"""
