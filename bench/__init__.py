"""Benchmarks: each module not starting with an underscore is one, run by `python -m bench`."""
