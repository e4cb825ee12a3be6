"""Robustness tooling: corrupt-image and ioctl fuzzers that run in the VM.

    vexfs fuzz image [--cases N] [--seed S] [--out DIR]
    vexfs fuzz ioctl [--calls N] [--seed S]

See docs/robustness.md.
"""
