"""The results table (Markdown) and the target checks, from the runs of one session."""

from __future__ import annotations

import statistics

from .contenders import CONDA_INDEX, LISTING, OURS_RANGE, OURS_SHARDS, RATTLER, Run

TYPES = ("LIST", "GET", "GET-range", "HEAD", "PUT", "POST", "DELETE")
KIB = 1024


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f}" if n >= 1e5 else f"{n / 1e6:,.3f}"


def _ratio(value: float, base: float | None) -> str:
    if not base:
        return ""
    return f"{value / base:,.2f}x"


def markdown(runs: list[Run], floors: dict[str, int]) -> str:
    """One row per run, by scenario; ratios against `ours --no-shards` of the same scenario."""
    head = (
        "| scenario | contender | wall s | x ours | MB read | x ours | "
        + " | ".join(TYPES)
        + " | peak RSS MB | load |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    scenarios: list[str] = []
    for r in runs:
        if r.scenario not in scenarios:
            scenarios.append(r.scenario)
    for scenario in scenarios:
        rows = [r for r in runs if r.scenario == scenario]
        ours = next((r for r in rows if r.contender == OURS_RANGE), None)
        for r in rows:
            read = r.tally.get("bytes_read", 0)
            requests = r.tally.get("requests", {})
            cells = [
                scenario,
                r.contender,
                f"{r.wall_s:,.2f}",
                _ratio(r.wall_s, ours.wall_s if ours else None),
                _mb(read) if r.tally else "n/c",
                _ratio(read, ours.tally.get("bytes_read") if ours and r.tally else None),
                *(f"{requests.get(t, 0):,}" if r.tally else "n/c" for t in TYPES),
                f"{r.peak_rss_mb:,.0f}",
                f"{r.load:.1f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if scenario in floors:
            cells = [
                scenario,
                "**floor**: listing + info",
                "",
                "",
                _mb(floors[scenario]),
                "",
                *([""] * len(TYPES)),
                "",
                "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r.scenario}, {r.contender}: {r.note}" for r in runs if r.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def _find(runs: list[Run], scenario_start: str, contender: str) -> Run | None:
    return next(
        (r for r in runs if r.scenario.startswith(scenario_start) and r.contender == contender),
        None,
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary(runs: list[Run], floors: dict[str, int], conda_excess: list[int]) -> dict:
    """Where each target stands, as text (and the per-.conda excess figures)."""
    out: list[str] = []
    excess = {}
    if conda_excess:
        excess = {
            "count": len(conda_excess),
            "max": max(conda_excess),
            "median": statistics.median(conda_excess),
        }
        out.append(
            f"- bytes read per new .conda beyond its info member ({excess['count']:,} reads, "
            f"range-read mode): max {excess['max'] / KIB:.1f} KiB, median "
            f"{excess['median'] / KIB:.1f} KiB; target <= 16 KiB: "
            + _verdict(excess["max"] <= 16 * KIB)
        )
    cold = sorted(
        {r.scenario for r in runs if r.scenario.startswith("cold") and "set-up" not in r.scenario},
        key=lambda s: int("".join(c for c in s.split()[1] if c.isdigit())),
    )
    if cold:
        big = cold[-1]
        ours, rattler, conda = (_find(runs, big, c) for c in (OURS_RANGE, RATTLER, CONDA_INDEX))
        for other, need in ((rattler, 5), (conda, 10)):
            if ours and other:
                ratio = other.wall_s / ours.wall_s
                out.append(
                    f"- {big}: {other.contender} / {OURS_RANGE} = {ratio:.1f}x "
                    f"(target >= {need}x: {_verdict(ratio >= need)})"
                )
    listing = _find(runs, "warm 0", LISTING)
    for contender in (OURS_RANGE, OURS_SHARDS):
        ours = _find(runs, "warm 0", contender)
        if ours and listing:
            ratio = ours.wall_s / listing.wall_s
            puts = ours.tally["requests"].get("PUT", 0)
            out.append(
                f"- {ours.scenario}: {contender} / bare listing = {ratio:.2f}x, {puts} PUTs "
                f"(target <= 1.3x, 0 PUTs: {_verdict(ratio <= 1.3 and puts == 0)})"
            )
    for r in runs:
        wide = r.scenario.startswith(("warm 0", "cold")) and "tiny" in r.scenario
        if r.contender in (OURS_RANGE, OURS_SHARDS) and (wide or r.scenario.startswith("one")):
            out.append(
                f"- peak RSS, {r.contender}, {r.scenario}: {r.peak_rss_mb:.0f} MB "
                f"(target <= 200 MB: {_verdict(r.peak_rss_mb <= 200)})"
            )
    return {"text": "\n".join(out), "conda_excess": excess}
