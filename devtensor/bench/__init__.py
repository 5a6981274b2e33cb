"""Benchmark machinery shared by bench/ scripts and the `devtensor bench` CLI."""
