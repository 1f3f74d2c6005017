"""What a scenario file is checked against on this machine (`market/scenario/machine.py`): the
memory one round needs against the limit, the device, and that these checks apply where a file
is loaded to run, not where a finished run's scenario is read back."""

from __future__ import annotations

import re
import tomllib

import pytest
import torch
from test_bad_inputs import CLASSIC, MOSAIC, edit  # the corpus's bases (tests/ is on the path)

from genmarket.market.cli import PREFIX, main
from genmarket.market.scenario import machine, validate_scenario


def _scenario(text: str):
    return validate_scenario(tomllib.loads(text))


def test_the_limit_is_the_boundary(tmp_path, capsys, monkeypatch):
    """Refused exactly when the estimate is above the limit: one byte less than it needs is
    refused, its own size passes."""
    path = tmp_path / "s.toml"
    path.write_text(CLASSIC)
    need = machine.round_bytes(_scenario(CLASSIC))
    monkeypatch.setattr(machine, "memory_limit", lambda device: (need - 1, "RAM"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "per round, the machine has" in err and "(RAM)" in err
    monkeypatch.setattr(machine, "memory_limit", lambda device: (need, "RAM"))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("base", [CLASSIC, MOSAIC], ids=["classic", "mosaic"])
def test_the_estimate_is_linear_in_replicas_and_auctions(base):
    one = machine.round_bytes(_scenario(base))
    three = "replicas = 3\n" + base.replace("replicas = 1\n", "")
    assert machine.round_bytes(_scenario(three)) == 3 * one
    B = int(re.search(r"auctions_per_step = (\d+)", base).group(1))
    five = edit(base, f"auctions_per_step = {B}", f"auctions_per_step = {5 * B}")
    assert machine.round_bytes(_scenario(five)) == 5 * one


def test_float64_doubles_the_estimate():
    single = machine.round_bytes(_scenario(CLASSIC))
    assert machine.round_bytes(_scenario('dtype = "float64"\n' + CLASSIC)) == 2 * single


@pytest.mark.parametrize("line, bigger", [
    ("candidates = 4", "candidates = 8"), ("length = 6", "length = 12"),
    ('generator = "context"', 'generator = "context"\n[language.synthetic]\nstates = 16'),
])
def test_mosaic_counts_its_candidates_replies_and_tables(line, bigger):
    """The family's own factor grows with M, the reply length and the world's tables."""
    text = MOSAIC.replace("[language.synthetic]\nseed = 0\n", "") if "states" in bigger else MOSAIC
    assert machine.round_bytes(_scenario(edit(text, line, bigger))) > \
        machine.round_bytes(_scenario(text))


def test_a_grid_makes_the_engine_estimate_grow():
    small = _scenario(CLASSIC)
    wide = _scenario(edit(CLASSIC, 'strategy = { kind = "hedge", eta = 0.1 }',
                          'strategy = { kind = "hedge", multipliers = { low = 0.0, high = 1.0, '
                          "n = 301 } }"))
    assert machine.round_bytes(wide) > machine.round_bytes(small)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_run_device_override_is_refused_before_the_run(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(CLASSIC)
    out = tmp_path / "run"
    status = main(["run", str(path), "--device", "cuda", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith(f"{PREFIX}scenario error in {path}") and "CUDA is not available" in err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_a_saved_scenario_is_read_back_without_the_machine_checks():
    """A report of a run made on a GPU machine reads its scenario on a CPU one: the schema alone
    (validate_scenario) does not ask for the device."""
    assert _scenario('device = "cuda"\n' + CLASSIC).device == "cuda"
