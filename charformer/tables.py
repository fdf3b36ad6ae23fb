"""Plain-text tables: columns padded to their widest cell, two spaces apart."""

from __future__ import annotations

from collections.abc import Sequence


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """The rows as lines, columns left-aligned to the longest rows' widest cells (a shorter row is a note)."""
    longest = max(len(row) for row in rows)
    full = [row for row in rows if len(row) == longest]
    widths = [max(len(row[i]) for row in full) for i in range(longest)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
