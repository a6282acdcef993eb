"""Benchmarks and machine checks that live outside the installed `stance` package.

A regular package (with this file), not a namespace one: pysbd installs a top-level
`benchmarks` package of its own, which would otherwise shadow this folder. Put the
repository root first on sys.path to import it (the scripts do).
"""
