"""Unit tests of `report.build`: the one function that makes a subdir's report."""

from __future__ import annotations

from indexer.model import ChecksumResult, Lint, Problem, Pruned, Published, ReadResult
from indexer.report.build import PassValues, problems, settled_report, subdir_report


def test_one_pass_gives_its_values() -> None:
    values = PassValues(
        listed=5,
        new=["a-1-0.conda"],
        changed=["b-1-0.conda"],
        removed=["c-1-0.conda"],
        read=ReadResult(artifacts_read=2, bytes_read=300, read_in_full=1, read_in_full_bytes=200),
        checksums=ChecksumResult(from_repodata=3, full_reads=1, full_read_bytes=50),
        problems=([Problem("x-1-0.conda", "truncated")], []),
        warnings=["w"],
        patch_warnings=[],
        changes=[],
        lints=[Lint("a-1-0.conda", "k", "m")],
        taken=[],
        published=Published(["noarch/run_exports.json"]),
        pruned=Pruned(["noarch/shards/x.msgpack.zst"]),
    )
    report = subdir_report("noarch", [values], cache_rebuilt="corrupt", skipped=["s"]).to_dict()
    assert (report["listed"], report["new"], report["changed"], report["removed"]) == (5, 1, 1, 1)
    assert report["unchanged"] == 3
    assert report["bytes_read"] == 350 and report["checksum_bytes_read"] == 50
    assert report["read_in_full"] == 1 and report["checksums_from_repodata"] == 3
    assert report["uploaded"] == ["noarch/run_exports.json"]
    assert report["shards_pruned"] == ["noarch/shards/x.msgpack.zst"]
    assert report["warnings"] == ["w", "s"] and report["cache_rebuilt"] == "corrupt"
    assert report["unreadable"] == 1 and report["lints"][0]["kind"] == "k"


def test_a_redone_pass_adds_up_what_was_done_and_keeps_the_last_state() -> None:
    first = PassValues(
        read=ReadResult(artifacts_read=1, bytes_read=10),
        published=Published(["noarch/shards/a.msgpack.zst"]),
        warnings=["old"],
    )
    second = PassValues(
        listed=2,
        new=["a-1-0.conda"],
        read=ReadResult(artifacts_read=1, bytes_read=10),
        published=Published(["noarch/run_exports.json"]),
        warnings=["new"],
        problems=([], []),
    )
    report = subdir_report("noarch", [first, second])
    assert report.artifacts_read == 2 and report.bytes_read == 20
    assert report.uploaded == ["noarch/shards/a.msgpack.zst", "noarch/run_exports.json"]
    assert report.warnings == ["new"] and report.unchanged == 1


def test_a_refused_pass_reports_the_listing_only() -> None:
    refused = PassValues(listed=4, removed=["a", "b", "c"], refused="not published: ...")
    report = subdir_report("noarch", [refused])
    assert report.refused == "not published: ..." and report.removed == ["a", "b", "c"]
    assert report.listed == 4 and report.unchanged == 0 and report.uploaded == []


def test_settled_report_and_problems() -> None:
    report = settled_report("noarch", 3, [("a", "bad")], [("b", "odd")], ["w"])
    assert (report.listed, report.unchanged) == (3, 3)
    assert report.unreadable == [Problem("a", "bad")]
    assert report.run_exports_unknown == [Problem("b", "odd")]
    unreadable, unknown = problems([("a", "bad", None), ("b", None, "odd"), ("c", None, None)])
    assert unreadable == [Problem("a", "bad")] and unknown == [Problem("b", "odd")]
