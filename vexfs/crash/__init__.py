"""Kernel crash and hang detection on a guest's console.

`signatures` is the syzkaller-style table of Linux oops formats, `detect`
the streaming `CrashDetector` the VM harness feeds every console line, and
`crashtest` builds the test-only module that crashes the kernel on demand.
See vexfs/crash/README for the recommended guest kernel command line.
"""
