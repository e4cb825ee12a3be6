"""The founding spec's shell blocks, taken out of the spec file as written.

`../shared/seed/vm-testing-scenarios.md` (beside the checkout in CI; found
by walking up from the repo, or VEXFS_SPEC) holds six "### Scenario N:"
sections, each with one ```bash block under "#### Test Steps:", and a
"### Real-Time Monitoring Setup" block with three monitoring commands.
`scenario_blocks()` returns those blocks' text unchanged, so the verbatim
spec test runs exactly what a reader pastes into `ssh -p 2222 root@localhost`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vexfs.vm.paths import REPO_ROOT

SPEC_REL = Path("shared") / "seed" / "vm-testing-scenarios.md"
_HEADING_RE = re.compile(r"^### Scenario (\d+): (.+?)\s*$", re.M)
_FENCE_RE = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)


class SpecError(RuntimeError):
    pass


@dataclass(frozen=True)
class SpecBlock:
    number: int
    title: str
    text: str  # the ```bash block, exactly as in the spec

    @property
    def host_lines(self) -> list[str]:
        """The block's host-side commands: `scp ... root@localhost:...` copies
        from the checkout into the VM, so it runs on the host (the spec lists it
        under "# In VM:" but it names the host's kernel/build/vexfs.ko)."""
        return [line for line in self.text.splitlines() if line.lstrip().startswith("scp ")]

    @property
    def guest_script(self) -> str:
        """The block without its host-side lines, for bash in the VM."""
        return "\n".join(line for line in self.text.splitlines()
                         if not line.lstrip().startswith("scp ")) + "\n"


def find_spec(start: Path = REPO_ROOT) -> Path:
    """VEXFS_SPEC, else ../shared/seed/... beside the checkout or any parent."""
    env = os.environ.get("VEXFS_SPEC")
    if env:
        path = Path(env)
        if not path.is_file():
            raise SpecError(f"VEXFS_SPEC={env}: no such file")
        return path
    for parent in start.parents:  # ../shared beside the checkout, or higher up
        candidate = parent / SPEC_REL
        if candidate.is_file():
            return candidate
    raise SpecError(f"spec {SPEC_REL} not found beside {start} or any parent (set VEXFS_SPEC)")


def _section(text: str, start: int) -> str:
    """From `start` to the next heading of level 2-3 (a "# " line is a shell
    comment inside a block)."""
    nxt = re.compile(r"^#{2,3} ", re.M).search(text, start + 1)
    return text[start:nxt.start() if nxt else len(text)]


def scenario_blocks(text: str) -> list[SpecBlock]:
    blocks = []
    for match in _HEADING_RE.finditer(text):
        section = _section(text, match.start())
        steps = section.find("#### Test Steps:")
        fence = _FENCE_RE.search(section, steps if steps >= 0 else 0)
        if fence is None:
            raise SpecError(f"Scenario {match.group(1)}: no ```bash block")
        blocks.append(SpecBlock(int(match.group(1)), match.group(2), fence.group(1)))
    if [b.number for b in blocks] != list(range(1, 7)):
        raise SpecError(f"expected Scenarios 1-6, found {[b.number for b in blocks]}")
    return blocks


def monitoring_commands(text: str) -> list[str]:
    """The command lines of the "Real-Time Monitoring Setup" block (cd lines
    included, comments dropped), in order."""
    start = text.find("### Real-Time Monitoring Setup")
    if start < 0:
        raise SpecError("no Real-Time Monitoring Setup section")
    fence = _FENCE_RE.search(_section(text, start))
    if fence is None:
        raise SpecError("Real-Time Monitoring Setup: no ```bash block")
    return [line for line in fence.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def vm_access_commands(text: str) -> list[str]:
    """The "### VM Access" block's command lines (start, ssh, tail)."""
    start = text.find("### VM Access")
    if start < 0:
        raise SpecError("no VM Access section")
    fence = _FENCE_RE.search(_section(text, start))
    if fence is None:
        raise SpecError("VM Access: no ```bash block")
    return [line for line in fence.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def with_port(command: str, port: int) -> str:
    """The spec's ssh/scp command on another port (tests share the host with
    other runs; the documented workflow stays on 2222)."""
    return re.sub(r"(-[pP]) 2222\b", rf"\1 {port}", command)
