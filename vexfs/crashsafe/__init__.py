"""Crash-consistency proof: record a workload's writes with dm-log-writes,
replay the log to every FLUSH/FUA point and mark, and check each state.

logformat.py  the dm-log-writes on-disk log (parse, never write)
replay.py     incremental replay of a log onto a scratch image, point by point
dmlog.py      guest side: the log-writes device-mapper target (create, mark, remove)
workload.py   seeded metadata episodes and vector batches with their durable model
oracle.py     what must hold at a replay point, given the model
run.py        guest driver: record a workload, replay every point, check, report JSON
"""
