"""How benchmark rows print: one line per figure, with its ratio to the floor and its target."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]
"""A figure: ``name``, ``value``, ``unit``; optional ``target``, ``note``, ``ratio_vs_floor``."""


def format_rows(rows: list[Row]) -> str:
    """A benchmark table: name, value, unit, ratio to the floor, target, note."""
    lines = []
    for row in rows:
        value = row["value"]
        text = f"{value:,.0f}" if isinstance(value, float) and value >= 100 else f"{value:,.3g}"
        target = f"  target {row['target']}" if row.get("target") else ""
        note = f"  ({row['note']})" if row.get("note") else ""
        ratio = row.get("ratio_vs_floor")
        ratio_text = f"  {ratio:.2f}x floor" if isinstance(ratio, float) else ""
        lines.append(f"  {row['name']:<52} {text:>14} {row['unit']:<16}{ratio_text}{target}{note}")
    return "\n".join(lines)
