"""Benchmarks (not tests): each measures the project against the bare client doing the minimum work, same run."""
