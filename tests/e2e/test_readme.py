"""The README's quick start, run word for word: `scripts/up --detach` makes the default cluster
(name ``svcnet``, node network 172.20.0.0/24, pods 10.244.0.0/16) and the README's commands use
it by those addresses.

It needs root, and the default networks and name to itself: in a parallel run (scripts/check
runs pytest-xdist workers) the module is marked ``machine_exclusive``, so no other module of the
run holds a cluster while it runs (tests/conftest.py). A cluster of someone else's (another copy
of the suite, a developer's own) still makes it skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from svcnet.cluster.networks import DEFAULT, machine_in_use
from svcnet.node.names import cluster_tag
from tests.e2e.local_clusters import ROOT, SVCNET, tags_in_use

pytestmark = [pytest.mark.root, pytest.mark.machine_exclusive]


def test_readme_quick_start_word_for_word(tmp_path: Path) -> None:
    """The README's quick start, run as written (its install step finds everything there:
    CI just ran it through scripts/test)."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for part in ("quickstart", "quickstart-use"):
        block = text.split(f"<!-- {part}:begin -->")[1].split(f"<!-- {part}:end -->")[0]
        commands += [line for line in block.splitlines() if line and not line.startswith("```")]
    assert commands[0] == "scripts/up --detach"
    if any(u.network.overlaps(DEFAULT.nodes) or u.network.overlaps(DEFAULT.pods)
           for u in machine_in_use()) or cluster_tag("svcnet") in tags_in_use():
        pytest.skip("the README's commands need the default networks and cluster name, "
                    "which another cluster holds")
    env = dict(os.environ, SVCNET_HOME=str(tmp_path))
    outputs = []
    try:
        for command in commands:
            r = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                               cwd=ROOT, env=env, timeout=180, check=False)
            assert r.returncode == 0, f"{command}\n{r.stdout}\n{r.stderr}"
            outputs.append(r.stdout)
    finally:
        subprocess.run([*SVCNET, "down"], capture_output=True, cwd=ROOT, env=env, timeout=180,
                       check=False)
    assert re.match(r'frontend frontend -> \{"backend": "backend-', outputs[1])
    assert re.match(r'frontend frontend -> \{"backend": "backend-', outputs[2])
    assert re.match(r'\{"backend": "backend-[a-z0-9]+-[a-z0-9]{5}", "ip": "10\.244\.',
                    outputs[3])
    assert outputs[4].startswith("cluster 'svcnet' removed:")
