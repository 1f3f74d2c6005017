"""Public contract checks for auction families (scikit-learn's `check_estimator`, for auctions).

A plug-in's author runs them on their own family:

    from genmarket.mechanisms.contract import check_family
    check_family(MY_FAMILY)                       # raises AssertionError naming what fails

genmarket's own test suite runs them on every registered family (tests/contract/). They are
driven by the family's example batches (`Family.examples`): a family without examples fails
instead of being skipped. What is checked, on every example, device, dtype and seed:

- payments are finite, shaped [B, n], of the batch's dtype, on the batch's device, and so is
  every other floating field of the outcome;
- the same batch gives the same outcome, bit for bit;
- an advertiser that is masked out pays nothing, and changing its input changes nothing in the
  auctions it is absent from;
- the family's metric specifications name unique columns and draw only in panels it declares,
  and its settings model answers to each of its kinds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch

from genmarket.market.engine.seam import Example, Family

__all__ = ["check_example", "check_family", "check_specs", "column_setter"]


def column_setter(field: str):
    """An `Example.change` for batches whose advertiser i is column i of tensor `field` (the
    bids of an AuctionBatch, the rewards of a MosaicBatch): returns (batch, i, value) -> a copy
    of the batch with that column set to `value`."""

    def change(batch, i: int, value: float):
        x = getattr(batch, field).clone()
        x[:, i] = value
        return dataclasses.replace(batch, **{field: x})

    return change


def _tensors(out) -> dict[str, torch.Tensor]:
    if dataclasses.is_dataclass(out):
        items = ((f.name, getattr(out, f.name)) for f in dataclasses.fields(out))
    else:
        items = vars(out).items()
    return {k: v for k, v in items if isinstance(v, torch.Tensor)}


def check_example(example: Example) -> None:
    """Check one example batch (see the module docstring). Raises AssertionError."""
    mech, batch, where = example.mechanism, example.batch, f"example {example.name!r}"
    mask = batch.mask
    B, n = mask.shape
    out = mech.run(batch)
    got = _tensors(out)
    pay = got.get(example.payment)
    assert pay is not None, f"{where}: the outcome has no field {example.payment!r}"
    assert pay.shape == (B, n), f"{where}: payment shape {tuple(pay.shape)}, expected {(B, n)}"
    dtype = next((t.dtype for t in _tensors(batch).values() if t.is_floating_point()), pay.dtype)
    assert pay.dtype == dtype, f"{where}: payment dtype {pay.dtype}, the batch's is {dtype}"
    for name, t in got.items():
        assert t.device == mask.device, f"{where}: {name} is on {t.device}, the batch on {mask.device}"
        if t.is_floating_point():
            assert torch.isfinite(t).all(), f"{where}: {name} has non-finite values"
    again = _tensors(mech.run(batch))
    for name, t in got.items():
        assert torch.equal(t, again[name]), f"{where}: {name} differs between two runs of one batch"
    absent = ~mask
    assert (pay[absent] == 0).all(), f"{where}: an absent advertiser pays"
    for i in range(n):
        rows = absent[:, i]
        if not rows.any():
            continue
        other = _tensors(mech.run(example.change(batch, i, 7.5)))
        for name, t in got.items():
            assert torch.equal(t[rows], other[name][rows]), (
                f"{where}: changing absent advertiser {i}'s input changed {name}")


def check_specs(family: Family) -> None:
    """The family's declarations hang together. Raises AssertionError."""
    names = [s.name for s in family.metrics]
    dupes = sorted({x for x in names if names.count(x) > 1})
    assert not dupes, f"family {family.name!r}: metric names repeated: {dupes}"
    panels = {p.name for p in family.panels}
    stray = sorted({s.panel for s in family.metrics if s.panel is not None} - panels)
    assert not stray, f"family {family.name!r}: metrics drawn in undeclared panels {stray}"
    assert family.kinds, f"family {family.name!r}: no mechanism kinds"
    assert "kind" in family.settings.model_fields, (
        f"family {family.name!r}: its settings model has no `kind` field")
    for kind in family.kinds:
        assert family.answers(kind), f"family {family.name!r} does not answer to its kind {kind!r}"


def check_family(family: Family, devices: Iterable[str] = ("cpu",),
                 dtypes: Iterable[torch.dtype] = (torch.float32, torch.float64),
                 seeds: Iterable[int] = (0, 1, 2)) -> None:
    """Every check of this module on `family`, for each device, dtype and seed. Raises
    AssertionError naming the family, the example and what failed."""
    check_specs(family)
    for device in devices:
        for dtype in dtypes:
            for seed in seeds:
                examples = list(family.examples(torch.device(device), dtype, seed))
                assert examples, (f"family {family.name!r} has no example batches: give "
                                  "Family.examples at least one, so the contract can be checked")
                for ex in examples:
                    check_example(ex)
