"""Issue 13, acceptance 3: planted state in the bucket neither poisons, hangs nor fills the disk.

Someone with write access to the bucket's cache folder plants a trigger in
the SQLite cache, replaces a table by a view over an endless query, uploads a
zstd bomb as the cache object, or forges the settled summary. Each run here
is a real CLI process against SeaweedFS: it must finish in seconds, publish
no marker, keep its scratch files small, and write back a cache holding only
what this tool creates. `--verify` then repairs a tampered output and a
poisoned cache row.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard
from reliability import PREFIX, cli_command, cli_env, outputs, report_of, small_channel
from s3server import S3Endpoint, download_prefix, upload_tree

from dev.sample import build_artifact
from indexer.cache.trust import SCHEMA_VERSION, expected_schema
from indexer.config import Config as Options
from indexer.model import is_artifact
from indexer.publish.freshness import Settled, fingerprint
from indexer.publish.freshness import inputs as _inputs
from indexer.publish.freshness import output_paths as _output_paths
from indexer.publish.freshness import stamp as _stamp
from indexer.render.shards import SHARD_INDEX, decode, referenced_names
from indexer.storage.s3 import S3Options, S3Store, cache_path, settled_path

MARKER = "evil-backdoor >=666"
BOUNDED_S = 15.0  # a whole run of this five-artifact channel takes 1-2 s


def _decompress(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def published_text(snapshot: dict[str, bytes]) -> bytes:
    """Every published output, decompressed where it is zstd, concatenated."""
    out = []
    for path, data in sorted(outputs(snapshot).items()):
        out.append(_decompress(data) if path.endswith(".zst") else data)
    return b"\n".join(out)


def reachable_text(snapshot: dict[str, bytes]) -> bytes:
    """What clients reach now: the indexes and the shards the shard indexes name.

    Shards are content-addressed and stay until pruned, so a shard an earlier
    index named may still exist; no index names it.
    """
    kept = {}
    for path, data in outputs(snapshot).items():
        if "/shards/" in path:
            continue
        kept[path] = data
        if path.endswith(SHARD_INDEX):
            folder = path.rsplit("/", 1)[0]
            for name in referenced_names(decode(data)):
                kept[f"{folder}/shards/{name}"] = snapshot[f"{folder}/shards/{name}"]
    return published_text(kept)


class Run:
    """The CLI as a subprocess on one bucket's channel, with its own TMPDIR."""

    def __init__(self, s3: S3Endpoint, bucket: str, tmp: Path) -> None:
        self.s3, self.bucket, self.tmp = s3, bucket, tmp
        self.scratch_root = tmp / "tmpdir"
        self.scratch_root.mkdir(exist_ok=True)
        self.url = f"s3://{bucket}/{PREFIX}"

    def __call__(self, *args: str) -> tuple[int, dict[str, Any], str, float, int]:
        """(status, report, stderr, seconds, peak bytes under TMPDIR while it ran)."""
        report = self.tmp / "report.json"
        report.unlink(missing_ok=True)
        command = cli_command(self.url, self.s3.endpoint_url, report, *args)
        env = cli_env(self.s3, self.scratch_root)
        peak = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                size = 0
                for folder, _, files in os.walk(self.scratch_root):
                    for name in files:
                        with contextlib.suppress(OSError):  # removed meanwhile
                            size += os.stat(os.path.join(folder, name)).st_size
                peak[0] = max(peak[0], size)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        try:
            done_ = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=BOUNDED_S * 4
            )
        finally:
            done.set()
            watcher.join()
        seconds = time.monotonic() - started
        return done_.returncode, report_of(report), done_.stderr, seconds, peak[0]

    def snapshot(self) -> dict[str, bytes]:
        return download_prefix(self.s3.client(), self.bucket, f"{PREFIX}/")

    def cache_object(self, subdir: str) -> bytes:
        key = f"{PREFIX}/{cache_path(subdir)}"
        return self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, path: str, data: bytes) -> None:
        self.s3.client().put_object(Bucket=self.bucket, Key=f"{PREFIX}/{path}", Body=data)

    def plant(self, subdir: str, statements: list[str]) -> None:
        """Run SQL on the subdir's cache object and put it back (what an attacker can do)."""
        local = self.tmp / f"planted-{subdir}.sqlite"
        local.write_bytes(_decompress(self.cache_object(subdir)))
        db = sqlite3.connect(local)
        for statement in statements:
            db.execute(statement)
        db.commit()
        db.close()
        self.put(cache_path(subdir), zstandard.ZstdCompressor().compress(local.read_bytes()))

    def add_artifact(self, subdir: str, name: str, run_exports: Any) -> str:
        folder = self.tmp / "new" / subdir
        path = build_artifact(folder, name, "1.0", "0", subdir=subdir, run_exports=run_exports)
        self.put(f"{subdir}/{path.name}", path.read_bytes())
        return path.name


def cache_schema(data: bytes, tmp: Path) -> tuple[tuple[Any, ...], ...]:
    """sqlite_master of a downloaded cache object (opened read-only, nothing run)."""
    local = tmp / "downloaded.sqlite"
    local.write_bytes(_decompress(data))
    db = sqlite3.connect(f"{local.as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return tuple(sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")))
    finally:
        db.close()


@pytest.fixture
def run(aws_env: S3Endpoint, tmp_path: Path) -> Run:
    """A published small channel (two subdirs) with its cache in the bucket."""
    bucket = aws_env.new_bucket("planted")
    upload_tree(aws_env.client(), bucket, PREFIX, small_channel(tmp_path / "ch"))
    runner = Run(aws_env, bucket, tmp_path)
    status, _, err, _, _ = runner()
    assert status == 0, err
    return runner


TRIGGER = (
    "CREATE TRIGGER planted AFTER INSERT ON artifacts BEGIN "
    f'UPDATE artifacts SET run_exports = \'{{"weak": ["{MARKER}"]}}\' '
    "WHERE filename = NEW.filename; END"
)
ENDLESS_VIEW = [
    "ALTER TABLE artifacts RENAME TO artifacts_kept",
    "CREATE VIEW artifacts AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT 'x-1-0.conda' AS filename, i AS size, 't' AS token, NULL AS record, "
    "NULL AS run_exports, NULL AS run_exports_error, NULL AS error, NULL AS md5, "
    "NULL AS sha256 FROM n",
]


@pytest.mark.parametrize(
    "planted",
    [
        pytest.param([TRIGGER], id="after-insert-trigger"),
        pytest.param(ENDLESS_VIEW, id="view-over-endless-cte"),
        pytest.param(
            [
                "CREATE TABLE extra (x)",
                "CREATE INDEX planted_idx ON artifacts (token)",
                f"CREATE TEMP TRIGGER t AFTER INSERT ON artifacts BEGIN SELECT '{MARKER}'; END",
            ],
            id="extra-table-and-index",
        ),
    ],
)
def test_planted_sqlite_objects_are_set_aside_and_never_written_back(
    run: Run, planted: list[str], tmp_path: Path
) -> None:
    run.plant("linux-64", planted)
    new = run.add_artifact("linux-64", "newpkg", {"weak": ["newpkg >=1.0"]})
    status, report, err, seconds, _ = run()
    assert status == 0, err
    assert seconds < BOUNDED_S, f"took {seconds:.1f} s"
    linux = report["subdirs"]["linux-64"]
    assert "not the one this tool creates" in (linux["cache_rebuilt"] or ""), linux
    assert linux["artifacts_read"] == 4  # rebuilt from the channel
    snapshot = run.snapshot()
    assert MARKER.encode() not in published_text(snapshot)
    document = json.loads(snapshot["linux-64/run_exports.json"])
    assert document["packages.conda"][new]["run_exports"] == {"weak": ["newpkg >=1.0"]}
    # the cache written back holds exactly what this tool creates
    assert cache_schema(run.cache_object("linux-64"), tmp_path) == expected_schema(SCHEMA_VERSION)
    # and the next run trusts it: nothing read again
    status, report, err, _, _ = run()
    assert status == 0 and report["totals"]["artifacts_read"] == 0, err
    assert report["subdirs"]["linux-64"]["cache_rebuilt"] is None


def rle_bomb(gib: int) -> bytes:
    """A zstd frame of `gib` GiB of zeros in 4-byte RLE blocks (~32,000:1), as in the issue."""
    block = 128 << 10
    count = (gib << 30) // block
    header = (0xFD2FB528).to_bytes(4, "little") + bytes([0x00, 7 << 3])  # 128 KiB window
    rle = ((block << 3) | (1 << 1)).to_bytes(3, "little") + b"\0"
    last = ((block << 3) | (1 << 1) | 1).to_bytes(3, "little") + b"\0"
    return header + rle * (count - 1) + last


def test_rle_bomb_is_what_the_issue_saw() -> None:
    bomb = rle_bomb(1)
    assert len(bomb) < 40_000
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bomb))
    assert len(reader.read(1 << 20)) == 1 << 20  # it does decompress (to zeros)


def test_a_zstd_bomb_as_the_cache_object_is_capped(run: Run, tmp_path: Path) -> None:
    bomb = rle_bomb(6)
    assert len(bomb) < 200 << 10  # 192 KB → 6 GiB
    run.put(cache_path("noarch"), bomb)
    run.add_artifact("noarch", "late", ["late >=1.0"])
    status, report, err, seconds, peak = run()
    assert status == 0, err
    assert seconds < BOUNDED_S, f"took {seconds:.1f} s"
    assert peak <= 70 << 20, f"{peak} bytes under TMPDIR"  # the 64 MiB floor of the cap
    noarch = report["subdirs"]["noarch"]
    assert "decompresses to more than" in noarch["cache_rebuilt"], noarch
    assert noarch["artifacts_read"] == 3
    cached = run.cache_object("noarch")
    assert len(_decompress(cached)) < 1 << 20
    assert cache_schema(cached, tmp_path) == expected_schema(SCHEMA_VERSION)
    print(f"bomb: {seconds:.1f} s, peak {peak / 2**20:.1f} MiB under TMPDIR")


def forged_summary(run: Run, subdir: str, **extra: Any) -> bytes:
    """A settled summary matching the bucket as it is now (computable by anyone who can list)."""
    store = S3Store(run.url, S3Options(endpoint_url=run.s3.endpoint_url))
    listing = store.list_subdir(subdir)
    states = {e.name: (e.size, e.token) for e in listing if is_artifact(e.name)}
    options = Options(shards=True)
    tokens = {f"{subdir}/{e.name}": e.token for e in listing}
    paths = _output_paths(subdir, options)
    stamp = _stamp(subdir, states, options, _inputs(subdir, listing, options))
    summary = Settled(fingerprint(stamp, {p: tokens[p] for p in paths}))
    data = json.loads(summary.to_bytes())
    data.update(extra)
    return json.dumps(data).encode()


def tamper(run: Run, subdir: str) -> bytes:
    """Rewrite one entry of the published run_exports.json (and its .zst) to the marker."""
    original = run.snapshot()[f"{subdir}/run_exports.json"]
    document = json.loads(original)
    name = sorted(document["packages.conda"])[0]
    document["packages.conda"][name]["run_exports"] = {"weak": [MARKER]}
    tampered = json.dumps(document).encode()
    run.put(f"{subdir}/run_exports.json", tampered)
    run.put(f"{subdir}/run_exports.json.zst", zstandard.ZstdCompressor().compress(tampered))
    return original


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda run: forged_summary(run, "noarch", planted=[1]), id="extra-key"),
        pytest.param(
            lambda run: forged_summary(run, "noarch", unreadable=[["x.conda", "y", "z"]]),
            id="bad-pair",
        ),
        pytest.param(
            lambda run: forged_summary(run, "noarch", unreadable=[["x", "y"]] * 3_000_000),
            id="oversized",
        ),
        pytest.param(lambda run: b"[" * 100_000, id="deep-nesting"),
    ],
)
def test_a_malformed_settled_summary_is_ignored(run: Run, forge: Any) -> None:
    original = tamper(run, "noarch")
    run.put(settled_path("noarch"), forge(run))
    status, report, err, seconds, _ = run()
    assert status == 0, err
    assert seconds < BOUNDED_S
    snapshot = run.snapshot()
    assert snapshot["noarch/run_exports.json"] == original  # an ordinary run: repaired
    assert MARKER.encode() not in published_text(snapshot)
    assert "noarch/run_exports.json" in report["uploaded"]


def test_verify_repairs_a_tampered_output_behind_a_forged_summary(run: Run) -> None:
    original = tamper(run, "noarch")
    forged = forged_summary(run, "noarch")
    run.put(settled_path("noarch"), forged)
    status, report, err, _, _ = run("--verify")
    assert status == 0, err
    assert report["verified"] is True
    snapshot = run.snapshot()
    assert snapshot["noarch/run_exports.json"] == original
    assert MARKER.encode() not in published_text(snapshot)
    repaired = {r["filename"] for r in report["subdirs"]["noarch"]["repaired"]}
    assert {"noarch/run_exports.json", "noarch/run_exports.json.zst"} <= repaired
    assert report["subdirs"]["noarch"]["checksum_full_reads"] == 0  # range reads only
    assert report["totals"]["artifacts_read"] == 5  # every artifact, both subdirs
    assert snapshot[settled_path("noarch")] != forged  # replaced by what --verify saw
    # the next ordinary run finds everything as --verify left it
    status, report, err, _, _ = run()
    assert status == 0 and report["uploaded"] == [], err


def test_verify_repairs_a_poisoned_cache_row(run: Run, tmp_path: Path) -> None:
    original = run.snapshot()["linux-64/run_exports.json"]
    poisoned = json.dumps({"weak": [MARKER]})
    run.plant(
        "linux-64",
        [f"UPDATE artifacts SET run_exports = CAST('{poisoned}' AS BLOB)"],
    )
    # an ordinary run that renders (something new) publishes what the rows say:
    # rows are trusted like the bucket. --verify is the repair.
    new = run.add_artifact("linux-64", "newpkg", {"weak": ["newpkg >=1.0"]})
    status, _, err, _, _ = run()
    assert status == 0, err
    assert MARKER.encode() in run.snapshot()["linux-64/run_exports.json"]

    status, report, err, _, _ = run("--verify")
    assert status == 0, err
    linux = report["subdirs"]["linux-64"]
    repaired = {r["filename"]: r["reason"] for r in linux["repaired"]}
    poisoned_rows = [p for p in repaired if is_artifact(p.rsplit("/", 1)[-1])]
    assert len(poisoned_rows) == 3, repaired  # the three artifacts cached before
    assert all("run_exports" in repaired[p] for p in poisoned_rows)
    assert "linux-64/run_exports.json" in repaired
    snapshot = run.snapshot()
    assert MARKER.encode() not in reachable_text(snapshot)
    document = json.loads(snapshot["linux-64/run_exports.json"])
    del document["packages.conda"][new]
    assert json.dumps(document, sort_keys=True, separators=(",", ":")).encode() == original
    # the cache written back holds the repaired rows
    local = tmp_path / "after.sqlite"
    local.write_bytes(_decompress(run.cache_object("linux-64")))
    rows = sqlite3.connect(local).execute("SELECT run_exports FROM artifacts").fetchall()
    assert rows and all(MARKER.encode() not in (r[0] or b"") for r in rows)


def test_verify_markdown_names_what_it_repaired(run: Run, tmp_path: Path) -> None:
    tamper(run, "noarch")
    summary = tmp_path / "summary.md"
    status, _, err, _, _ = run("--verify", "--summary", str(summary))
    assert status == 0, err
    text = summary.read_text()
    assert "--verify: every artifact re-read; 2 cache row(s) or output(s) repaired." in text
    assert "`noarch/run_exports.json`: published bytes differed; rewritten" in text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
