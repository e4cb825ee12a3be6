"""The scenario harness: scenarios S1..S6 run in fresh VMs, `vexfs run`."""
