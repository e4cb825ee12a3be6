"""The guest agent's protocol, run on the host over a socketpair."""

from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path

import pytest

from vexfs.vm.agent import Agent


class Client:
    def __init__(self) -> None:
        self.host, guest = socket.socketpair()
        self.agent = Agent(guest.fileno())
        self._guest = guest
        self.thread = threading.Thread(target=self.agent.serve, kwargs={"stop_on_eof": True},
                                       daemon=True)
        self.thread.start()
        self.file = self.host.makefile("rb")
        self.heartbeats = 0
        self.hello = self.next_msg()

    def next_msg(self) -> dict:
        """The next reply, skipping heartbeats (counted)."""
        while True:
            msg = json.loads(self.file.readline())
            if msg.get("heartbeat"):
                self.heartbeats += 1
                continue
            return msg

    def call(self, **msg) -> dict:
        self.host.sendall((json.dumps(msg) + "\n").encode())
        return self.next_msg()

    def close(self) -> None:
        self.host.shutdown(socket.SHUT_WR)
        self.thread.join(10)
        # serve() has stopped its heartbeat and request threads: nothing of
        # this agent can write into a later socket that reuses the fd number.
        assert not self.thread.is_alive() and self.agent.stopped.is_set()
        self.host.close()
        self._guest.close()


@pytest.fixture
def client():
    c = Client()
    yield c
    c.close()


def test_hello(client: Client) -> None:
    assert client.hello["hello"] is True and client.hello["id"] == 0
    assert client.hello["uptime_s"] > 0


def test_exec_shell_and_argv(client: Client, tmp_path: Path) -> None:
    r = client.call(id=1, op="exec", cmd="echo out; echo err >&2; exit 3")
    assert (r["id"], r["rc"], r["stdout"], r["stderr"]) == (1, 3, "out\n", "err\n")
    assert 0 < r["duration_s"] < 10
    r = client.call(id=2, op="exec", argv=["printf", "%s|", "a b", "c"], cwd=str(tmp_path))
    assert r["rc"] == 0 and r["stdout"] == "a b|c|"


def test_exec_stdin_env_timeout(client: Client) -> None:
    r = client.call(id=3, op="exec", cmd="cat; echo $FOO", stdin="in\n", env={"FOO": "bar"})
    assert r["stdout"] == "in\nbar\n"
    r = client.call(id=4, op="exec", cmd="sleep 5", timeout=0.3)
    assert r["rc"] == 124 and r["timed_out"] is True


def test_write_read_roundtrip(client: Client, tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    dest = tmp_path / "sub" / "f.bin"
    r = client.call(id=5, op="write", path=str(dest), data=base64.b64encode(data).decode(),
                    mode=0o600)
    assert r == {"size": len(data), "id": 5}
    assert dest.read_bytes() == data and dest.stat().st_mode & 0o777 == 0o600
    r = client.call(id=6, op="read", path=str(dest))
    assert base64.b64decode(r["data"]) == data


def test_errors_are_replies(client: Client) -> None:
    assert "unknown op" in client.call(id=7, op="fly")["error"]
    assert "FileNotFoundError" in client.call(id=8, op="read", path="/nonexistent/x")["error"]
    r = client.call(id=9, op="exec", argv=["/nonexistent/binary"])
    assert "FileNotFoundError" in r["error"] and r["id"] == 9


def test_requests_are_served_concurrently(client: Client) -> None:
    # A slow command must not block a second request (the hang probe relies on it).
    client.host.sendall((json.dumps({"id": 10, "op": "exec", "cmd": "sleep 2"}) + "\n").encode())
    client.host.sendall((json.dumps({"id": 11, "op": "ping"}) + "\n").encode())
    first = client.next_msg()
    assert first["id"] == 11
    assert client.next_msg()["id"] == 10


def test_heartbeats_flow_while_a_command_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import vexfs.vm.agent as agent_mod

    monkeypatch.setattr(agent_mod, "HEARTBEAT_S", 0.1)
    c = Client()
    try:
        r = c.call(id=12, op="exec", cmd="sleep 1")
        assert r["rc"] == 0
        assert c.heartbeats >= 3
    finally:
        c.close()


def test_large_request_is_parsed(client: Client, tmp_path: Path) -> None:
    data = bytes(range(256)) * 16384  # 4 MiB: arrives in many reads
    dest = tmp_path / "big"
    r = client.call(id=13, op="write", path=str(dest), data=base64.b64encode(data).decode())
    assert r.get("size") == len(data), r
    assert dest.read_bytes() == data


def test_no_agent_thread_outlives_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    import vexfs.vm.agent as agent_mod

    monkeypatch.setattr(agent_mod, "HEARTBEAT_S", 0.05)
    before = set(threading.enumerate())
    c = Client()
    c.host.sendall((json.dumps({"id": 20, "op": "exec", "cmd": "sleep 0.3"}) + "\n").encode())
    c.host.shutdown(socket.SHUT_WR)  # EOF while a request is still running
    assert c.next_msg()["id"] == 20  # its reply still arrives
    c.thread.join(10)
    assert c.agent.stopped.is_set()
    assert set(threading.enumerate()) <= before  # heartbeat and handlers are gone
    c.host.close()
    c._guest.close()
