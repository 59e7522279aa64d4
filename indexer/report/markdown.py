"""The report for people: Markdown for `--summary`, the job summary and the PR comment.

Every name, reason and spec in it comes from artifacts or pull requests, so
untrusted text only ever appears inside a code span (`code`) or as plain
words that cannot mention, reference or link (`plain`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from indexer.model import RecordChange, RunExportsChange
from indexer.report.model import RunReport

MARKDOWN_TITLE = "run-exports-index"


MAX_LISTED = 200  # lines per section in Markdown before "… and N more"


OPEN_CHANGES = 20  # a diff this short is shown expanded


# -- Markdown ------------------------------------------------------------------
def to_markdown(report: RunReport) -> str:
    """The report for people: a table of counts, then the details that matter."""
    lines = [f"## {MARKDOWN_TITLE}: {code(report.channel)}", ""]
    if report.error:
        lines += [f"> [!CAUTION]\n> Run failed: {plain(report.error)}", ""]
        if not report.subdirs:  # it stopped before any subdir was done
            lines += [
                f"Mode **{report.mode}** · nothing was published by this run; "
                "fix the cause above and run again.",
            ]
            return "\n".join(lines).rstrip() + "\n"
    verb = "would upload" if report.mode != "publish" else "uploaded"
    lines += [
        f"Mode **{report.mode}** · {len(report.subdirs)} subdir(s) · "
        f"{report.total('listed')} artifacts · {len(report.uploaded)} file(s) {verb} · "
        f"{_bytes(report.total('bytes_read'))} read · {report.duration_s:.1f} s",
        "",
        "| subdir | listed | new | changed | removed | unchanged | unreadable | read |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in report.subdirs:
        lines.append(
            f"| {code(s.subdir)} | {s.listed} | {len(s.new)} | {len(s.changed)} | "
            f"{len(s.removed)} | {s.unchanged} | {len(s.unreadable)} | {_bytes(s.bytes_read)} |"
        )
    lines.append("")
    for s in report.subdirs:
        if s.baseline:
            lines += [f"> [!NOTE]\n> {code(s.subdir)}: {plain(s.baseline)}\n"]
    for s in report.subdirs:
        if s.notice:
            lines += [f"> [!NOTE]\n> {code(s.subdir)}: {plain(s.notice)}\n"]
        if s.refused:
            lines += [f"> [!CAUTION]\n> {code(s.subdir)}: {plain(s.refused)}\n"]
        lines += [f"> [!WARNING]\n> {code(s.subdir)}: {plain(w)}\n" for w in s.warnings]
    repaired = [p for s in report.subdirs for p in s.repaired]
    if report.verified:
        lines += [
            f"--verify: every artifact re-read; {len(repaired)} cache row(s) or output(s) "
            + ("repaired." if repaired else "differed: nothing to repair."),
            "",
        ]
        if repaired:
            lines += _details(
                f"Repaired ({len(repaired)})",
                [f"- {code(p.filename)}: {plain(p.reason)}" for p in repaired],
                open_=True,
            )
    changes = [(s.subdir, c) for s in report.subdirs for c in s.run_exports_changes]
    if changes:
        lines += _details(
            f"run_exports changes ({_change_counts(changes)})",
            _grouped_changes(changes),
            open_=len(changes) <= OPEN_CHANGES,
        )
    else:
        lines += ["No run_exports changes.", ""]
    fields = [(s.subdir, c) for s in report.subdirs for c in s.record_changes]
    if fields:  # what clients solve with changes: patches, removals, revocations
        artifacts = len({(sub, c.filename) for sub, c in fields})
        lines += _details(
            f"Record changes clients will see ({len(fields)} field(s) in {artifacts} artifact(s))",
            _grouped_records(fields),
            open_=len(fields) <= OPEN_CHANGES,
        )
    lints = [(s.subdir, lint) for s in report.subdirs for lint in s.lints]
    if lints:
        lines += _details(
            f"Lints ({len(lints)})",
            [
                f"- {code(f'{sub}/{lint.filename}')} ({plain(lint.kind)}): {plain(lint.message)}"
                for sub, lint in lints
            ],
            open_=True,
        )
    problems = [(s.subdir, p, "unreadable") for s in report.subdirs for p in s.unreadable] + [
        (s.subdir, p, "run_exports unknown") for s in report.subdirs for p in s.run_exports_unknown
    ]
    if problems:
        lines += _details(
            f"Problems ({len(problems)})",
            [
                f"- {code(f'{sub}/{p.filename}')} ({what}): {plain(p.reason)}"
                for sub, p, what in problems
            ],
        )
    mismatches = [(s.subdir, p) for s in report.subdirs for p in s.filename_mismatches]
    if mismatches:
        lines += _details(
            f"Filenames that do not match index.json ({len(mismatches)}, indexed anyway)",
            [f"- {code(f'{sub}/{p.filename}')}: {plain(p.reason)}" for sub, p in mismatches],
        )
    read_in_full = report.total("read_in_full")
    if read_in_full:
        lines += [
            f"info/ not first: {read_in_full} .tar.bz2 artifact(s) read in full "
            f"({_bytes(report.total('read_in_full_bytes'))}).",
            "",
        ]
    full_reads = report.total("checksum_full_reads")
    if full_reads:
        lines += [
            f"Checksums for shards: {full_reads} artifact(s) read in full "
            f"({_bytes(report.total('checksum_bytes_read'))}); "
            f"{report.total('checksums_from_repodata')} taken from repodata.json.",
            "",
        ]
    proven = [(s.subdir, p) for s in report.subdirs for p in s.local_copies_proven]
    not_used = [(s.subdir, p) for s in report.subdirs for p in s.local_copies_not_used]
    if proven or not_used:
        lines += _details(
            f"Local copies: {len(proven)} read here instead of from the channel, "
            f"{len(not_used)} not used",
            [f"- {code(f'{sub}/{p.filename}')}: not used, {plain(p.reason)}" for sub, p in not_used]
            + [f"- {code(f'{sub}/{p.filename}')}: proven, {plain(p.reason)}" for sub, p in proven],
            open_=bool(not_used),
        )
    taken = [(s.subdir, t) for s in report.subdirs for t in s.records_from_repodata]
    if taken:
        lines += _details(
            f"Records taken from the channel's repodata.json ({len(taken)}): patched there "
            "by something this run cannot see",
            [
                f"- {code(f'{sub}/{t.filename}')}: {', '.join(code(f) for f in t.fields)}"
                for sub, t in taken
            ],
            open_=len(taken) <= OPEN_CHANGES,
        )
    pruned = [path for s in report.subdirs for path in s.shards_pruned]
    if pruned:
        verb_pruned = "pruned" if report.mode == "publish" else "would prune"
        lines += _details(
            f"Shards {verb_pruned} ({len(pruned)})", [f"- {code(path)}" for path in pruned]
        )
    uploaded = report.uploaded
    if uploaded:
        lines += _details(
            f"Files {verb} ({len(uploaded)})", [f"- {code(path)}" for path in uploaded]
        )
    return "\n".join(lines).rstrip() + "\n"


# Characters that would reorder or hide text (bidi embeddings, overrides and
# isolates, zero-width spaces and joiners, the BOM, line/paragraph separators):
# every Unicode "format" (Cf) and separator (Zl, Zp) character, shown as \uXXXX.
def _visible(char: str) -> str:
    if unicodedata.category(char) in ("Cf", "Zl", "Zp"):
        return f"\\u{ord(char):04x}"
    return char


def _flat(text: object) -> str:
    """One line: control characters → a space, invisible ones → `\\uXXXX`."""
    flat = re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", str(text))
    return "".join(_visible(c) if ord(c) > 0x7F else c for c in flat)


MAX_FENCE = 79  # cmark-gfm ignores backtick strings of 80 or more as code-span fences
_LONG_RUN = re.compile(f"`{{{MAX_FENCE},}}")


def code(text: object) -> str:
    """`text` as an inline code span that nothing inside can break out of.

    Filenames, specs and reasons come from artifacts and pull requests: a
    backtick, a newline or `</details>` in them must not change the page, and
    GitHub never links, mentions or references anything inside a code span.
    The fence is longer than any backtick run in the text. GitHub's renderer
    (cmark-gfm) opens no span with a fence of 80 backticks or more, so a run
    that long is broken up first: each backtick followed by `\\u2060`, the
    way invisible characters are shown (see `_flat`).
    """
    flat = _LONG_RUN.sub(lambda m: "`\\u2060" * len(m.group()), _flat(text))
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


# Words that stay plain text: ASCII letters, digits and punctuation that
# GitHub's Markdown, mentions, references and autolinks never act on. Any other
# word goes into a code span (where nothing is linked), and so does one that
# looks like a URL, a domain, `GH-1` or a commit SHA (7+ hex digits).
_PLAIN_WORD = re.compile(r"[A-Za-z0-9.,;:()'\"=+\-_/%!?]+")


_LINK_LIKE = re.compile(r"(?i)(://|www\.|gh-\d|[0-9a-f]{7}|[a-z0-9]\.[a-z]{2,}(?:$|[^a-z0-9]))")


_EDGE = re.compile(r"^([(\"']*)(.*?)([)\"'.,;:!?]*)$", re.S)


def plain(text: object) -> str:
    """Untrusted text outside a code span: one line, and nothing in it can mention,
    reference or link (`@user`, `#1`, `org/repo#1`, `GH-1`, SHAs, URLs, HTML).

    GitHub applies mentions and references after rendering, to the text of the
    page, so escaping (`\\@user`, `&#64;`) does not help; a code span does. Words
    that are plain prose stay as they are; every other word becomes a code span.
    """
    words = re.split(r"( +)", _flat(text))
    return "".join(word if _is_plain(word) else _code_word(word) for word in words)


def _is_plain(word: str) -> bool:
    return not word.strip() or (
        _PLAIN_WORD.fullmatch(word) is not None and not _LINK_LIKE.search(word)
    )


def _code_word(word: str) -> str:
    """A word in a code span, with plain brackets and punctuation left outside."""
    lead, core, trail = _EDGE.match(word).groups()  # type: ignore[union-attr]
    return f"{lead}{code(core)}{trail}" if core else code(word)


def _details(title: str, items: list[str], open_: bool = False) -> list[str]:
    shown = items[:MAX_LISTED]
    if len(items) > MAX_LISTED:
        shown.append(f"- … and {len(items) - MAX_LISTED} more (see the JSON report)")
    tag = "<details open>" if open_ else "<details>"
    return [tag, f"<summary>{title}</summary>", "", *shown, "", "</details>", ""]


def _change_counts(changes: list[tuple[str, RunExportsChange]]) -> str:
    counts = {kind: 0 for kind in ("added", "changed", "removed")}
    for _, change in changes:
        counts[change.change] += 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)


def _grouped_changes(changes: list[tuple[str, RunExportsChange]]) -> list[str]:
    """One heading line per subdir and package, its artifacts below it."""
    lines: list[str] = []
    current = None
    for subdir, change in changes:
        if (subdir, change.package) != current:
            current = (subdir, change.package)
            lines.append(f"- **{plain(change.package)}** ({code(subdir)})")
        lines.append("  " + _change_line(change))
    return lines


def _grouped_records(fields: list[tuple[str, RecordChange]]) -> list[str]:
    """Package heading, then each artifact, then one line per field that changes."""
    lines: list[str] = []
    package = artifact = None
    for subdir, c in sorted(fields, key=lambda x: (x[0], x[1].package, x[1].filename)):
        if (subdir, c.package) != package:
            package, artifact = (subdir, c.package), None
            lines.append(f"- **{plain(c.package)}** ({code(subdir)})")
        if c.filename != artifact:
            artifact = c.filename
            lines.append(f"  - {code(c.filename)}")
        lines.append(f"    - {_field_line(c)}")
    return lines


def _field_line(c: RecordChange) -> str:
    """`field`: before → after; a list of strings (depends, constrains, track_features
    as a list) as the items it gains and loses."""
    if c.field == "removed":
        return "removed: clients no longer see it" if c.after else "restored: clients see it again"
    before, after = c.before, c.after
    if _strings(before) and _strings(after):
        gained = [code(_short(x)) for x in after if x not in before]
        lost = [code(_short(x)) for x in before if x not in after]
        parts = ([f"adds {', '.join(gained)}"] if gained else []) + (
            [f"drops {', '.join(lost)}"] if lost else []
        )
        return f"{code(c.field)}: {'; '.join(parts) or 'reordered'}"
    return f"{code(c.field)}: {_value(before)} → {_value(after)}"


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


MAX_VALUE = 300  # characters of one value shown; the JSON report has it whole


def _short(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "…"


def _value(value: Any) -> str:
    if value is None:
        return "(absent)"
    return code(_short(json.dumps(value, sort_keys=True, ensure_ascii=False)))


def _change_line(c: RunExportsChange) -> str:
    if c.change == "added":
        return f"- {code(c.filename)} added with {_exports(c.new)}"
    if c.change == "removed":
        return f"- {code(c.filename)} removed (had {_exports(c.old)})"
    return f"- {code(c.filename)} changed: {_exports(c.old)} → {_exports(c.new)}"


def _exports(value: Any) -> str:
    if not isinstance(value, dict):
        return "unknown run_exports"
    if not value:
        return "no run_exports"
    parts = [
        f"{plain(k)}: {', '.join(code(s) for s in v)}"
        for k, v in sorted(value.items())
        if isinstance(v, list)
    ]
    return "; ".join(parts) or "no run_exports"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
