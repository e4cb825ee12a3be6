"""Corrupt-image fuzzing in the VM: 1,000 mutated images (offline-built and
kernel-written seeds), each mounted, walked, written, unmounted and checked
with fsck.vexfs -n. No case may crash or hang the kernel, make fsck raise,
mount with a bad superblock checksum, fail to unmount, or turn an image
fsck calls consistent into an inconsistent one. Findings are saved as
reproducers under .cache/fuzz/image-test/findings/ (see docs/robustness.md).
"""

from __future__ import annotations

import json

import pytest

from vexfs.fuzz.imagefuzz import FuzzConfig, ImageFuzzer
from vexfs.vm.build import VEXFS_KO
from vexfs.vm.paths import cache_dir

CASES = 1000


@pytest.mark.vm
@pytest.mark.timeout(2400)
def test_image_fuzz_1000_cases() -> None:
    out = cache_dir() / "fuzz" / "image-test"
    cfg = FuzzConfig(cases=CASES, seed=20261125, out=out, module=VEXFS_KO,
                     shrink_probes=30)
    summary = ImageFuzzer(cfg, echo=print).run()
    st = summary["stats"]
    print(json.dumps({k: summary[k] for k in ("wall_s", "cases_per_s_wall", "cases_per_s_vm")}
                     | {"mounted": st["mounted"], "mount_errnos": st["mount_errnos"],
                        "boots": st["boots"]}, indent=1))
    assert st["cases_run"] >= CASES
    # the mutations must reach past the superblock check, and must be refused sometimes
    assert st["mounted"] > CASES // 4, st["mount_errnos"]
    assert len(st["mount_errnos"]) >= 2, st["mount_errnos"]
    assert "kernel_0.img" in summary["bases"]
    findings = summary["findings"]
    assert not findings, "\n".join(f"case {f['case']}: {f['kind']}: {f['title']} -> "
                                   f"{f['reproducer']}" for f in findings)


@pytest.mark.vm
@pytest.mark.timeout(1200)
def test_crash_is_attributed_saved_shrunk_and_survived(tmp_path) -> None:
    """The machinery itself: a WARNING fired (by vexfs_crashtest) while case 5
    runs must be attributed to case 5, saved with its image and trace,
    shrunk (the trigger ignores the image, so ddmin must end at one byte),
    and the remaining cases must run in a fresh VM."""
    from vexfs.crash.crashtest import build_crashtest

    ko = build_crashtest()
    cfg = FuzzConfig(cases=12, seed=3, out=tmp_path / "fz", module=VEXFS_KO,
                     kernel_base=False, shrink_probes=12, inject=(5, "warn"),
                     crashtest_module=ko)
    summary = ImageFuzzer(cfg, echo=print).run()
    findings = summary["findings"]
    assert [f["case"] for f in findings] == [5], findings
    f = findings[0]
    assert f["kind"] == "crash" and "WARNING" in f["title"], f
    d = tmp_path / "fz" / "findings" / "case_000005_crash"
    meta = json.loads((d / "case.json").read_text())
    assert meta["case"] == 5 and meta["seed"] == 3 and meta["mutations"]
    assert "crashtest_warn" in meta["crash"]["trace"]
    assert (d / "image.img").stat().st_size == (d / "base.img").stat().st_size
    assert f["shrunk_bytes"] == 1 and (d / "minimized.img").exists(), f
    st = summary["stats"]
    assert st["cases_run"] == 12 and st["boots"] >= 3  # crash boot, the rest, shrink probes
