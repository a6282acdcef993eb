"""Benchmarks behind scripts/bench_*.py: side-by-side throughput, scaling and efficiency."""
