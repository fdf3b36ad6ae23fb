"""Plain-text tables: columns padded to their widest cell, two spaces apart."""

from __future__ import annotations

from collections.abc import Sequence


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """The rows as lines, each column left-aligned to its widest cell (trailing spaces cut).

    Columns are measured on the longest rows only: a shorter row's last cell spans the rest.
    """
    longest = max(len(row) for row in rows)
    widths = [max(len(row[i]) for row in rows if len(row) == longest) for i in range(longest)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
