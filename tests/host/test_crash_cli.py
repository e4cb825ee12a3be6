"""`python -m vexfs.crash`: triage of saved console logs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from vexfs.crash.cli import crash

DATA = Path(__file__).parent / "data" / "console"


def test_parse_reports_crashes_and_exit_code():
    result = CliRunner().invoke(crash, ["parse", str(DATA / "warn.log"), str(DATA / "clean_boot.log")])
    assert result.exit_code == 1
    assert "warn.log: warning: WARNING in crashtest_warn" in result.output
    assert "clean_boot.log: no crash" in result.output


def test_parse_clean_log_exits_zero():
    result = CliRunner().invoke(crash, ["parse", str(DATA / "clean_modules.log")])
    assert result.exit_code == 0, result.output


def test_parse_json_all():
    result = CliRunner().invoke(crash, ["parse", "--json", "--all", str(DATA / "hang.log")])
    data = json.loads(result.output)
    assert len(data) == 7
    assert data[0]["kind"] == "hang" and data[0]["corrupted"] is False
    assert data[0]["log_path"].endswith("hang.log")


def test_triggers_lists_every_trigger():
    from vexfs.crash.crashtest import TRIGGERS

    result = CliRunner().invoke(crash, ["triggers"])
    assert result.exit_code == 0
    for name in TRIGGERS:
        assert f"  {name} " in result.output


def test_parse_stdin_like_dmesg():
    text = (DATA / "oops.log").read_text()
    result = CliRunner().invoke(crash, ["parse", "-"], input=text)
    assert result.exit_code == 1
    assert "-: oops: BUG: kernel NULL pointer dereference in crashtest_oops" in result.output
