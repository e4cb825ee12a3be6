"""report.json / junit.xml writers and the results/latest link."""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from vexfs.report.model import Crash, Criterion, Environment, Run, ScenarioResult, Status
from vexfs.report.sample import sample_run
from vexfs.report.writers import jsonable, run_to_json, update_latest_link, write_run


def _testcases(root: ET.Element) -> dict[str, ET.Element]:
    return {tc.get("classname").rsplit(".", 1)[-1]: tc for tc in root.iter("testcase")}


def test_json_round_trip(tmp_path: Path) -> None:
    run = sample_run()
    paths = write_run(run, tmp_path, html=False)
    assert paths["json"] == tmp_path / "report.json"
    data = json.loads(paths["json"].read_text())
    back = Run.from_dict(data)
    assert back == run
    assert back.to_dict() == run.to_dict()
    assert data["scenarios"][5]["status"] == "error"
    assert data["environment"]["accelerator"] == "tcg"
    # Stable: the same run serialises to the same bytes, keys sorted.
    assert run_to_json(run) == run_to_json(Run.from_dict(data))
    assert list(data) == sorted(data)


def test_json_handles_numpy_and_nan(tmp_path: Path) -> None:
    run = sample_run()
    run.scenarios[1].metrics["load_s"] = np.array([0.1, 0.2], dtype=np.float32)
    run.scenarios[1].metrics["peak"] = np.int64(7)
    run.scenarios[1].metrics["bad"] = float("nan")
    run.scenarios[1].metrics["path"] = Path("/tmp/x")
    write_run(run, tmp_path, html=False)
    data = json.loads((tmp_path / "report.json").read_text())  # strict parser would choke on NaN
    m = data["scenarios"][1]["metrics"]
    assert m["load_s"] == pytest.approx([0.1, 0.2])
    assert m["peak"] == 7 and m["bad"] is None and m["path"] == "/tmp/x"
    assert jsonable({"a": (1, math.inf)}) == {"a": [1, None]}


def test_junit_structure(tmp_path: Path) -> None:
    run = sample_run()
    run.scenarios[2].status = Status.SKIPPED
    run.scenarios[2].message = "needs loop devices"
    write_run(run, tmp_path, html=False)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("tests") == "6"
    assert suite.get("failures") == "1"
    assert suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    assert suite.get("id") == run.run_id
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["kernel_version"] == "6.1.0-56-amd64"
    assert props["accelerator"] == "tcg"

    cases = _testcases(suite)
    assert sorted(cases) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert cases["S1"].find("failure") is None and cases["S1"].find("error") is None
    assert float(cases["S2"].get("time")) == pytest.approx(11.7)

    failure = cases["S4"].find("failure")
    assert failure is not None
    assert "1 of 5 criteria failed: no kernel warnings" in failure.get("message")
    assert "[FAIL] no kernel warnings" in failure.text
    assert "[PASS]" not in failure.text  # only the failed criteria are listed

    error = cases["S6"].find("error")
    assert error is not None
    assert error.get("type") == "oops"
    assert "NULL pointer dereference" in error.get("message")
    assert "vexfs_read_super_block+0x5e" in error.text
    assert "console/S6.log" in error.text

    skipped = cases["S3"].find("skipped")
    assert skipped is not None and skipped.get("message") == "needs loop devices"

    # Metrics are in system-out, as JSON.
    out = cases["S2"].find("system-out").text
    assert '"load_s"' in out and "[PASS] all 20 cycles complete" in out


def test_junit_escapes_guest_text(tmp_path: Path) -> None:
    nasty = 'BUG: <script>alert("x")</script> & \x01\x07 done'
    run = Run(run_id="r", started_at="2026-11-25T00:00:00Z", duration_s=1.0,
              environment=Environment("6.1", "tcg", "h"),
              scenarios=[ScenarioResult("S1", "x", Status.ERROR, 1.0,
                                        crashes=[Crash("bug", nasty, nasty)])])
    write_run(run, tmp_path, html=False)
    root = ET.parse(tmp_path / "junit.xml").getroot()  # must still be well-formed XML
    err = root.find("testsuite/testcase/error")
    assert "<script>" in err.get("message")


def test_failed_without_criteria_still_a_failure(tmp_path: Path) -> None:
    run = Run(run_id="r", started_at="", duration_s=0.0, environment=Environment("", "", ""),
              scenarios=[ScenarioResult("S9", "x", Status.FAILED, 0.0,
                                        criteria=[Criterion("ok", True)])])
    write_run(run, tmp_path, html=False)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.find("testsuite").get("failures") == "1"
    assert root.find("testsuite/testcase/failure").get("message") == "scenario failed"


def test_empty_run(tmp_path: Path) -> None:
    run = Run(run_id="empty", started_at="", duration_s=0.0, environment=Environment("", "", ""))
    paths = write_run(run, tmp_path, html=False)
    assert Run.from_dict(json.loads(paths["json"].read_text())) == run
    assert ET.parse(paths["junit"]).getroot().find("testsuite").get("tests") == "0"


def test_latest_link(tmp_path: Path) -> None:
    results = tmp_path / "results"
    a = results / "run-a"
    b = results / "run-b"
    for d in (a, b):
        d.mkdir(parents=True)
    link = update_latest_link(results, a)
    assert link.is_symlink() and os.readlink(link) == "run-a"
    assert link.resolve() == a.resolve()
    update_latest_link(results, b)
    assert os.readlink(results / "latest") == "run-b"
    assert not [p for p in results.iterdir() if p.name.startswith(".")]


def test_latest_link_refuses_real_dir(tmp_path: Path) -> None:
    (tmp_path / "latest").mkdir()
    with pytest.raises(FileExistsError):
        update_latest_link(tmp_path, tmp_path / "x")


def test_reads_reports_with_newer_fields(tmp_path: Path) -> None:
    """Fields added later (same schema_version) must not break older readers."""
    data = json.loads(run_to_json(sample_run()))
    data["environment"]["future_field"] = 1
    data["scenarios"][5]["crashes"][0]["future_field"] = "x"
    data["scenarios"][0]["criteria"][0]["weight"] = 2
    run = Run.from_dict(data)
    assert run.environment.kernel_version == "6.1.0-56-amd64"
    assert run.scenarios[5].crashes[0].kind == "oops"
