from vexfs.crash.cli import crash

crash(prog_name="python -m vexfs.crash")
