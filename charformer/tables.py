"""Plain-text tables: columns padded to their widest cell, two spaces apart."""

from __future__ import annotations

from collections.abc import Sequence


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """The rows as lines, each column left-aligned to its widest cell among the longest rows (a
    shorter row, a note spanning the rest, does not widen the columns it runs across)."""
    longest = max(len(row) for row in rows)
    full = [row for row in rows if len(row) == longest]
    widths = [max(len(row[i]) for row in full) for i in range(longest)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
