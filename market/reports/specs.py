"""What a family's specifications say about a folder of its: which family it is (from the
manifest), the words and unit of each metric column, the columns compared across variants and
the pair of columns unraveling is read from. Reports name no family or metric of their own:
they ask these functions."""

from __future__ import annotations

from genmarket.market.engine.seam import ENGINE_METRICS, UNITS, Family, MetricSpec, family_of

__all__ = ["compared", "family_for", "label", "unit", "unraveling_columns"]


def family_for(manifest: dict) -> Family:
    """The family of a folder: the one its manifest's mechanism kind belongs to."""
    return family_of(manifest["scenario"]["mechanism"]["kind"])


def _group(spec: MetricSpec, column: str) -> str:
    """The advertiser group of a per-group column (`entry_rate_{group}` -> group)."""
    head, _, tail = spec.name.partition("{group}")
    return column[len(head):len(column) - len(tail)]


def label(family: Family, column: str) -> str:
    """Words for a metric column: its spec's label. A per-group column reads as the label of the
    spec its name starts with, then the group ("entry rate (bidders)"); the column's own name
    when no spec describes it."""
    spec = family.metric(column)
    if spec is None:
        return column
    if not spec.per_group or spec.name == column:
        return spec.label
    group = _group(spec, column)
    base = family.metric(spec.name.partition("{group}")[0].rstrip("_"))
    return f"{base.label} ({group})" if base is not None else spec.label.format(group=group)


def unit(family: Family, column: str) -> str:
    """The unit of a metric column: its spec's, "money" being the family's money unit ("" when
    no spec describes it or the number has no unit)."""
    spec = family.metric(column)
    u = spec.unit if spec is not None else ""
    return family.money if u == "money" else UNITS.get(u, u)


def compared(family: Family) -> list[MetricSpec]:
    """The specs of the columns compared across variants, in the family's order."""
    return [s for s in (*family.metrics, *ENGINE_METRICS) if s.compared and not s.per_group]


def unraveling_columns(family: Family) -> tuple[str, str] | None:
    """The family's unraveling column pair (see `Family.unraveling_columns`)."""
    return family.unraveling_columns()
