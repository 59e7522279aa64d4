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


def _columns(run: Run, networks: list[str]) -> str:
    """The network column a run belongs in (a set-up run straight to the server: the first)."""
    return run.network if run.network in networks else networks[0]


def markdown(runs: list[Run], floors: dict[str, int], networks: list[str]) -> str:
    """One row per scenario and contender, its wall time on each network side by side.

    Ratios are against `ours --no-shards` of the same scenario and network; with two
    networks, the second's wall time over the first's. Bytes, requests and RSS are
    the first network's (the same work on both).
    """
    nets = networks or ["loopback"]
    head = "| scenario | contender | " + " | ".join(f"{n} s | x ours" for n in nets)
    if len(nets) == 2:
        head += f" | {nets[1]} / {nets[0]}"
    head += " | MB read | x ours | " + " | ".join(TYPES) + " | peak RSS MB | load |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    rows: dict[tuple[str, str], dict[str, Run]] = {}
    for r in runs:
        rows.setdefault((r.scenario, r.contender), {})[_columns(r, nets)] = r
    scenarios = list(dict.fromkeys(scenario for scenario, _ in rows))
    for scenario in scenarios:
        ours = rows.get((scenario, OURS_RANGE), {})
        for (sc, contender), by_net in rows.items():
            if sc != scenario:
                continue
            first = next(by_net[n] for n in nets if n in by_net)
            base = ours.get(_columns(first, nets))
            read = first.tally.get("bytes_read", 0)
            requests = first.tally.get("requests", {})
            cells = [scenario, contender]
            for n in nets:
                r = by_net.get(n)
                cells += (
                    [f"{r.wall_s:,.2f}", _ratio(r.wall_s, ours[n].wall_s if n in ours else None)]
                    if r
                    else ["", ""]
                )
            if len(nets) == 2:
                a, b = by_net.get(nets[0]), by_net.get(nets[1])
                cells.append(_ratio(b.wall_s, a.wall_s) if a and b else "")
            cells += [
                _mb(read) if first.tally else "n/c",
                _ratio(read, base.tally.get("bytes_read") if base and first.tally else None),
                *(f"{requests.get(t, 0):,}" if first.tally else "n/c" for t in TYPES),
                f"{max(r.peak_rss_mb for r in by_net.values()):,.0f}",
                " / ".join(f"{by_net[n].load:.1f}" for n in nets if n in by_net),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if scenario in floors:
            blank = [""] * (2 * len(nets) + (len(nets) == 2))
            cells = [scenario, "**floor**: listing + info", *blank, _mb(floors[scenario])]
            cells += [""] * (1 + len(TYPES) + 2)
            lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r.scenario}, {r.contender} [{r.network}]: {r.note}" for r in runs if r.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def comparison(runs: list[Run], ref_contenders: list[str], head: str) -> str:
    """Each compared revision beside the current tree: medians, every round, the ratio.

    The per-round ratios pair the two runs of one round (made one right after the
    other, in alternating order); their spread is the noise band of the figure.
    """
    lines = [
        f"Revisions side by side (current tree = {head}; median of the rounds, each cold):",
        "",
        "| scenario | contender | network | ref s | current s | current / ref "
        "| per-round ratios | ref rounds s | current rounds s | MB read ref / current |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ref_name in ref_contenders:
        base, _, label = ref_name.partition(" @ ")
        for ref in [r for r in runs if r.contender == ref_name]:
            cur = next(
                (
                    r
                    for r in runs
                    if r.contender == base
                    and r.scenario == ref.scenario
                    and r.network == ref.network
                ),
                None,
            )
            if cur is None:
                continue
            a, b = ref.samples or [ref.wall_s], cur.samples or [cur.wall_s]
            rounds = [y / x for x, y in zip(a, b, strict=False)]
            lines.append(
                "| "
                + " | ".join(
                    [
                        ref.scenario,
                        f"{base} ({label} vs {head})",
                        ref.network,
                        f"{ref.wall_s:,.2f}",
                        f"{cur.wall_s:,.2f}",
                        _ratio(cur.wall_s, ref.wall_s),
                        f"{min(rounds):.2f} to {max(rounds):.2f}",
                        ", ".join(f"{x:.2f}" for x in a),
                        ", ".join(f"{y:.2f}" for y in b),
                        f"{_mb(ref.tally.get('bytes_read', 0))} / "
                        f"{_mb(cur.tally.get('bytes_read', 0))}",
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def _find(runs: list[Run], scenario_start: str, contender: str) -> Run | None:
    return next(
        (r for r in runs if r.scenario.startswith(scenario_start) and r.contender == contender),
        None,
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary(
    runs: list[Run],
    floors: dict[str, int],
    conda_excess: list[int],
    networks: list[str] | None = None,
) -> dict:
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
    nets = networks or ["loopback"]
    for net in nets:
        mine = [r for r in runs if _columns(r, nets) == net]
        out += [f"- [{net}] {line[2:]}" for line in _targets(mine)]
    return {"text": "\n".join(out), "conda_excess": excess}


def _targets(runs: list[Run]) -> list[str]:
    """The target lines of one network's runs."""
    out: list[str] = []
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
    return out
