"""Issue 8: a seeded fuzz corpus of hostile artifacts never crashes a run.

500 seeded mutations of valid artifacts (truncations, bit flips, wrong magic,
zeroed or spliced ranges, huge declared sizes) plus crafted attacks (a zip
bomb in the info member, an oversized index.json, 10,000 info members,
path-traversal names, non-UTF-8 text, wrong JSON types). Each damaged artifact
is reported with a reason or, where the damage missed everything that
matters, indexed normally; none crashes the run or poisons the cache; memory
stays bounded; the good artifacts beside them are indexed exactly.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hostile import crafted, mutate, valid_artifact

from dev.sample import build_artifact

SEED = 20261124
MUTATIONS = 500
MAX_RSS_MB = 200


@pytest.fixture(scope="module")
def hostile_channel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("hostile") / "ch"
    noarch = root / "noarch"
    noarch.mkdir(parents=True)
    good = {
        build_artifact(noarch, "good", run_exports={"weak": ["good >=1"]}).name: {
            "weak": ["good >=1"]
        },
        build_artifact(noarch, "good2", fmt=".tar.bz2", run_exports=["good2"]).name: {
            "weak": ["good2"]
        },
    }
    rng = random.Random(SEED)
    mutated = {}
    for i in range(MUTATIONS):
        path, _ = valid_artifact(noarch, i, rng)
        kind, data = mutate(path.read_bytes(), rng)
        path.write_bytes(data)
        mutated[path.name] = kind
    attacks = crafted(noarch)
    return root, good, {"mutated": mutated, "crafted": attacks}


def run_measured(*args: str) -> tuple[int, str, int]:
    """Run the CLI in a child process; return (status, stderr, peak RSS in MB)."""
    # VmHWM is this address space's peak; ru_maxrss would include the parent's
    # peak, carried over a vfork + exec.
    code = (
        "import re, sys\n"
        "from indexer.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print('MAXRSS', hwm, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    rss_kb = int(done.stderr.rsplit("MAXRSS", 1)[1].split()[0])
    return done.returncode, done.stderr, rss_kb // 1024


def test_hostile_corpus(hostile_channel, tmp_path: Path) -> None:
    root, good, cases = hostile_channel
    report_path = tmp_path / "report.json"
    status, err, rss_mb = run_measured(
        "index",
        str(root),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--report",
        str(report_path),
        "-q",
    )
    assert status == 0, err[-3000:]
    assert "Traceback" not in err
    assert rss_mb < MAX_RSS_MB, f"peak RSS {rss_mb} MB"

    noarch = orjson.loads(report_path.read_bytes())["subdirs"]["noarch"]
    unreadable = {p["filename"]: p["reason"] for p in noarch["artifacts"]["unreadable"]}
    unknown = {p["filename"]: p["reason"] for p in noarch["artifacts"]["run_exports_unknown"]}
    document = json.loads((root / "noarch" / "run_exports.json").read_text())
    indexed = {**document["packages"], **document["packages.conda"]}

    # the good artifacts are indexed exactly
    for filename, exports in good.items():
        assert indexed[filename] == {"run_exports": exports}
    # every crafted attack is reported, with the reason we expect
    for filename, expected in cases["crafted"].items():
        assert expected in unreadable.get(filename, ""), (filename, unreadable.get(filename))
    # every mutation is accounted for: indexed, or reported with a reason
    for filename in cases["mutated"]:
        reasons = [r for r in (unreadable.get(filename), unknown.get(filename)) if r is not None]
        assert filename in indexed or reasons, filename
        assert all(r.strip() for r in reasons)
        assert not (filename in indexed and filename in unreadable)
    # the damage was real: most mutations broke their artifact
    assert sum(f in unreadable for f in cases["mutated"]) > MUTATIONS // 2
    assert noarch["listed"] == len(good) + MUTATIONS + len(cases["crafted"])

    # the cache is not poisoned: a warm run reads nothing and writes nothing
    status, err, _ = run_measured(
        "index",
        str(root),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--report",
        str(report_path),
        "-q",
    )
    warm = orjson.loads(report_path.read_bytes())
    assert status == 0, err[-3000:]
    assert warm["totals"]["artifacts_read"] == 0 and warm["uploaded"] == []
    assert warm["subdirs"]["noarch"]["artifacts"]["unreadable"] == noarch["artifacts"]["unreadable"]
