"""Benchmarks: ``python -m bench [NAME]``; each prints one JSON line and writes bench/results/NAME.json."""
