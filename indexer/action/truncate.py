"""Cut Markdown to a size limit without leaving it broken.

Both the pull-request comment (65,536 characters) and the job summary (1 MiB)
have hard limits, and GitHub rejects, not trims, anything longer. Cutting in
the middle of a `<details>` block or a code fence would swallow everything
after it when rendered, so the cut is made between lines and every block that
is still open there is closed, followed by a note that points to the full
report.
"""

from __future__ import annotations

from collections.abc import Callable

FENCE = "```"


def truncate_markdown(
    text: str,
    limit: int,
    *,
    measure: Callable[[str], int] = len,
    note: str = "The report was too long to show here in full.",
    link: str = "",
) -> str:
    """`text` if it fits in `limit` (as counted by `measure`), else a valid prefix of it.

    The prefix ends at a line boundary, closes open code fences and `<details>`
    blocks, and ends with `note` (and a link to the full report when given).
    """
    if measure(text) <= limit:
        return text
    tail = f"\n> [!NOTE]\n> {note}"
    if link:
        tail += f" Full report: [run summary]({link})."
    tail += "\n"
    kept: list[str] = []
    size = 0
    depth = 0
    in_fence = False
    for line in text.split("\n"):
        line_depth, line_fence = _after(line, depth, in_fence)
        candidate = size + measure(line + "\n")
        if candidate + measure(_closing(line_depth, line_fence) + tail) > limit:
            break
        kept.append(line)
        size, depth, in_fence = candidate, line_depth, line_fence
    result = "\n".join(kept) + "\n" + _closing(depth, in_fence) + tail
    if measure(result) > limit:  # not even the note fits: cut hard, still valid text
        return _hard_cut(text, limit, measure)
    return result


def _after(line: str, depth: int, in_fence: bool) -> tuple[int, bool]:
    """The open `<details>` depth and fence state after `line`."""
    if line.lstrip().startswith(FENCE):
        return depth, not in_fence
    if in_fence:
        return depth, in_fence
    # the report puts <details> and </details> on lines of their own; the same
    # text inside a line is a filename or reason in a code span, not structure
    tag = line.strip()
    if tag.startswith("<details") and tag.endswith(">"):
        depth += 1
    elif tag == "</details>":
        depth -= 1
    return max(depth, 0), in_fence


def _closing(depth: int, in_fence: bool) -> str:
    return (FENCE + "\n" if in_fence else "") + "\n</details>\n" * depth


def _hard_cut(text: str, limit: int, measure: Callable[[str], int]) -> str:
    """Last resort for absurd limits: the longest prefix that fits."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]
