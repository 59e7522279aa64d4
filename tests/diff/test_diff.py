"""Unit tests of the pure diff stage: the plan, the run_exports diff, the mass-removal guard."""

from __future__ import annotations

from indexer import diff
from indexer.model import Entry


def entry(name: str, size: int = 10, token: str = "t1") -> Entry:
    return Entry(name, size, token)


def test_plan_sorts_new_changed_removed_and_unchanged() -> None:
    listing = [entry("b-1-0.conda"), entry("a-1-0.conda", token="t2"), entry("c-1-0.tar.bz2")]
    cached = {"a-1-0.conda": (10, "t1"), "c-1-0.tar.bz2": (10, "t1"), "gone-1-0.conda": (5, "x")}
    plan = diff.plan(listing, cached)
    assert [e.name for e in plan.new] == ["b-1-0.conda"]
    assert [e.name for e in plan.changed] == ["a-1-0.conda"]
    assert plan.unchanged == ["c-1-0.tar.bz2"]
    assert plan.removed == ["gone-1-0.conda"]
    assert [e.name for e in plan.to_read] == ["a-1-0.conda", "b-1-0.conda"]


def test_plan_counts_a_size_change_with_the_same_token_as_changed() -> None:
    plan = diff.plan([entry("a-1-0.conda", size=11)], {"a-1-0.conda": (10, "t1")})
    assert [e.name for e in plan.changed] == ["a-1-0.conda"] and not plan.unchanged


def test_run_exports_diff_by_package_then_filename() -> None:
    old = {
        "packages": {"zlib-1-0.tar.bz2": {"run_exports": {"weak": ["zlib"]}}},
        "packages.conda": {"abc-1-0.conda": {"run_exports": {}}},
    }
    new = {
        "packages": {},
        "packages.conda": {
            "abc-1-0.conda": {"run_exports": {"weak": ["abc"]}},
            "abc-2-0.conda": {"run_exports": ["abc"]},  # list form: {"weak": list}
        },
    }
    changes = diff.diff_run_exports(old, new)
    assert [(c.filename, c.change) for c in changes] == [
        ("abc-1-0.conda", "changed"),
        ("abc-2-0.conda", "added"),
        ("zlib-1-0.tar.bz2", "removed"),
    ]
    assert changes[1].new == {"weak": ["abc"]} and changes[2].old == {"weak": ["zlib"]}


def test_run_exports_diff_of_identical_documents_is_empty() -> None:
    doc = {"packages": {}, "packages.conda": {"a-1-0.conda": {"run_exports": {}}}}
    assert diff.diff_run_exports(doc, doc) == []
    assert [c.change for c in diff.diff_run_exports(None, doc)] == ["added"]


def test_mass_removal_refuses_past_the_share_unless_allowed() -> None:
    before = {f"p-{i}-0.conda" for i in range(10)}
    kept = [entry(f"p-{i}-0.conda") for i in range(4)]  # 6 of 10 gone
    why = diff.mass_removal(before, kept, 0.5, allow=False)
    assert why is not None and "remove 6 of its 10 artifacts (60%" in why
    assert diff.mass_removal(before, kept, 0.6, allow=False) is None
    assert diff.mass_removal(before, kept, 0.5, allow=True) is None
    assert diff.mass_removal(set(), [], 0.5, allow=False) is None  # nothing known: never
