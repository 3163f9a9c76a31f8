"""Tabular benchmark of kdtune's search (HPOBench / NAS-Bench style): build a dense grid table
of KD runs once, then replay search strategies on it in seconds. Entry: benchmarks/bench_search.py.
"""
