"""The guest agent: runs commands for the host over a virtio-serial port.

Started by the guest's job script as `python3 -I agent.py` (stdlib only, so
it starts fast and does not depend on the venv). It opens the virtio-serial
port named `vexfs.agent` and speaks JSON lines; the host side is
`vexfs.vm.session.GuestVM`. Each request is served on its own thread, so a
command stuck in the kernel does not stop the host from asking for a
`sysrq` dump of the blocked tasks.

Requests (one JSON object per line, always with an integer "id"):
  {"op": "exec", "argv": [...]} or {"op": "exec", "cmd": "shell text"},
      optional "timeout", "cwd", "env", "stdin" (text)
      -> {"rc", "stdout", "stderr", "duration_s"} (duration measured here,
         in the guest, around the process only)
  {"op": "write", "path", "data" (base64), "mode"}   -> {"size"}
  {"op": "read", "path"}                              -> {"data" (base64)}
  {"op": "ping"}                                      -> {"uptime_s"}
Replies echo the id; failures carry "error" instead.
On start the agent sends {"id": 0, "hello": true, "uptime_s": ...}, then
{"id": -2, "heartbeat": true, "uptime_s": ...} every HEARTBEAT_S seconds.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import sys
import threading
import time

PORT_NAME = "vexfs.agent"
MAX_OUTPUT = 16 * 1024 * 1024
HEARTBEAT_S = 2.0  # bytes of stdout/stderr kept per command


def find_port(name: str = PORT_NAME) -> str:
    for path in glob.glob("/sys/class/virtio-ports/*/name"):
        with open(path) as fh:
            if fh.read().strip() == name:
                return "/dev/" + path.split("/")[-2]
    raise SystemExit(f"agent: no virtio-serial port named {name}")


def uptime() -> float:
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0])


class Agent:
    def __init__(self, port: str | int) -> None:
        # A path (the virtio-serial port) or an already open fd (tests).
        self.fd = port if isinstance(port, int) else os.open(port, os.O_RDWR)
        self.wlock = threading.Lock()
        # Set when serve() returns: the heartbeat thread and the request
        # threads must not outlive it, or they would write into whatever
        # file later reuses the fd number (seen in the host tests: a stale
        # heartbeat arrived on the next test's socket before its hello).
        self.stopped = threading.Event()
        self.handlers: set[threading.Thread] = set()
        self.hlock = threading.Lock()

    def send(self, msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with self.wlock:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]

    def serve(self, stop_on_eof: bool = False) -> None:
        while True:
            try:
                self.send({"id": 0, "hello": True, "uptime_s": uptime(), "pid": os.getpid()})
                break
            except OSError:  # the host end is not connected yet
                time.sleep(0.2)
        beat = threading.Thread(target=self.heartbeat, daemon=True)
        beat.start()
        try:
            self._serve_requests(stop_on_eof)
        finally:
            with self.hlock:
                running = list(self.handlers)
            for thread in running:  # replies still owed go out first
                thread.join()
            self.stopped.set()
            beat.join()

    def _serve_requests(self, stop_on_eof: bool) -> None:
        pending = bytearray()
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                if stop_on_eof:
                    return
                # Host side not connected (or disconnected): the port reads
                # EOF; wait for it to come back.
                time.sleep(0.1)
                continue
            # Only the new bytes are searched for a newline: a multi-MB
            # request must not cost quadratic time under TCG.
            start = len(pending)
            pending += chunk
            pos = pending.find(b"\n", start)
            while pos != -1:
                line = bytes(pending[:pos])
                del pending[:pos + 1]
                if line.strip():
                    thread = threading.Thread(target=self._handle_tracked, args=(line,),
                                              daemon=True)
                    with self.hlock:
                        self.handlers.add(thread)
                    thread.start()
                pos = pending.find(b"\n")

    def heartbeat(self) -> None:
        """Tell the host every HEARTBEAT_S that the guest still schedules
        userspace: the host's hang detector counts this as progress, so a
        long but live command under a slow emulator is not a hang."""
        while not self.stopped.wait(HEARTBEAT_S):
            try:
                self.send({"id": -2, "heartbeat": True, "uptime_s": uptime()})
            except OSError:
                pass

    def _handle_tracked(self, line: bytes) -> None:
        try:
            self.handle(line)
        finally:
            with self.hlock:
                self.handlers.discard(threading.current_thread())

    def handle(self, line: bytes) -> None:
        try:
            req = json.loads(line)
        except ValueError as exc:
            self.send({"id": -1, "error": f"bad request: {exc}"})
            return
        rid = req.get("id", -1)
        try:
            reply = getattr(self, "op_" + str(req.get("op")))(req)
        except AttributeError:
            reply = {"error": f"unknown op {req.get('op')!r}"}
        except Exception as exc:  # report every failure to the host
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply["id"] = rid
        try:
            self.send(reply)
        except OSError:  # the host went away; nothing to tell
            pass

    def op_ping(self, req: dict) -> dict:
        return {"uptime_s": uptime()}

    def op_exec(self, req: dict) -> dict:
        argv = req.get("argv") or ["/bin/sh", "-c", req["cmd"]]
        env = dict(os.environ)
        env.update(req.get("env") or {})
        stdin = req.get("stdin")
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, input=stdin.encode() if stdin is not None else None,
                                  stdin=subprocess.DEVNULL if stdin is None else None,
                                  capture_output=True, timeout=req.get("timeout"),
                                  cwd=req.get("cwd") or "/root", env=env)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
            timed_out = False
        except subprocess.TimeoutExpired as exc:
            rc, out, err, timed_out = 124, exc.stdout or b"", exc.stderr or b"", True
        duration = time.monotonic() - start
        return {"rc": rc, "stdout": out[-MAX_OUTPUT:].decode(errors="backslashreplace"),
                "stderr": err[-MAX_OUTPUT:].decode(errors="backslashreplace"),
                "duration_s": duration, "timed_out": timed_out}

    def op_write(self, req: dict) -> dict:
        data = base64.b64decode(req["data"])
        path = req["path"]
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, int(req.get("mode", 0o644)))
        return {"size": len(data)}

    def op_read(self, req: dict) -> dict:
        with open(req["path"], "rb") as fh:
            return {"data": base64.b64encode(fh.read()).decode()}


def main() -> None:
    port = sys.argv[1] if len(sys.argv) > 1 else find_port()
    Agent(port).serve()


if __name__ == "__main__":
    main()
