"""Benchmarks that run inside the VM (`vexfs bench`)."""
