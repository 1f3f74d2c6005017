"""Checkpoints that cannot resume wrong: a deleted or edited part, a changed tensor file, an
edited step count, a path in state.json that leaves the folder, a final table changed after the
run, and a checkpoint of another scenario are refused, naming the file; untouched folders resume
exactly."""

import json

import pandas as pd
import pytest

from genmarket.market.running.folder import RunFolderError
from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import validate_scenario


def _run(data, path, **kw):
    return run_scenario(validate_scenario(data), path, figures=False, **kw)


@pytest.fixture
def cut(scenario_dict, tmp_path):
    """A run of 60 rounds interrupted after round 33 (checkpoints every 10: the last at 30)."""
    scenario_dict.update(steps=60, checkpoint_every=10)
    with pytest.raises(Interrupted):
        _run(scenario_dict, tmp_path / "cut", stop_after=33)
    return scenario_dict, tmp_path / "cut"


def _state(folder):
    return json.loads((folder / "checkpoint" / "state.json").read_text())


def test_an_untouched_interrupted_run_resumes_exactly(cut, tmp_path):
    data, folder = cut
    whole = _run(data, tmp_path / "whole")
    _run(data, folder, resume=True)
    pd.testing.assert_frame_equal(pd.read_parquet(whole.folder / "metrics.parquet"),
                                  pd.read_parquet(folder / "metrics.parquet"))


def _delete_a_part(folder):
    sorted((folder / "parts").glob("metrics-*.parquet"))[0].unlink()
    return "parts/metrics-"


def _delete_parts(folder):
    for p in (folder / "parts").glob("*.parquet"):
        p.unlink()
    return "parts/"


def _edit_a_part(folder):
    part = sorted((folder / "parts").glob("agents-*.parquet"))[-1]
    df = pd.read_parquet(part)
    df["utility"] = df["utility"] + 1.0
    df.to_parquet(part, index=False)
    return part.name


def _flip_tensor_bytes(folder):
    blob = next((folder / "checkpoint").glob("state-*.safetensors"))
    raw = bytearray(blob.read_bytes())
    for i in range(len(raw) - 64, len(raw)):
        raw[i] ^= 0xFF
    blob.write_bytes(bytes(raw))
    return blob.name


def _edit_the_step(folder):
    state = _state(folder)
    state["steps"] = 28
    (folder / "checkpoint" / "state.json").write_text(json.dumps(state))
    return "expected 'state-0000000028.safetensors' for step 28"


def _edit_the_step_and_rename(folder):
    """Step, file name and hash all made consistent: the tensors' own metadata still says 30."""
    state = _state(folder)
    old = folder / "checkpoint" / state["tensors"]
    state.update(steps=28, tensors="state-0000000028.safetensors")
    old.rename(folder / "checkpoint" / state["tensors"])
    (folder / "checkpoint" / "state.json").write_text(json.dumps(state))
    return "was written at step 30, but state.json says step 28"


def _escape_the_folder(folder):
    state = _state(folder)
    state["tensors"] = "../../../../etc/passwd"
    (folder / "checkpoint" / "state.json").write_text(json.dumps(state))
    return "etc/passwd"


def _inject_a_part(folder):
    src = sorted((folder / "parts").glob("metrics-*.parquet"))[0]
    (folder / "parts" / "metrics-0000000001-0000000002.parquet").write_bytes(src.read_bytes())
    return "was not written by this run"


@pytest.mark.parametrize("tamper", [_delete_a_part, _delete_parts, _edit_a_part,
                                    _flip_tensor_bytes, _edit_the_step, _edit_the_step_and_rename,
                                    _escape_the_folder,
                                    _inject_a_part])
def test_a_tampered_checkpoint_is_refused_naming_the_file(cut, tamper):
    data, folder = cut
    words = tamper(folder)
    with pytest.raises(RunFolderError) as err:
        _run(data, folder, resume=True)
    assert words in str(err.value), str(err.value)
    assert "cannot resume this folder exactly" in str(err.value)


def test_a_finished_run_vouches_for_its_final_tables(scenario_dict, tmp_path):
    scenario_dict.update(steps=40)
    res = _run(scenario_dict, tmp_path / "done")
    state = _state(res.folder)
    assert state["parts"] == {} and set(state["final"]) == {"metrics.parquet", "agents.parquet"}
    df = pd.read_parquet(res.folder / "metrics.parquet")
    df.loc[0, "revenue"] = 99.0
    df.to_parquet(res.folder / "metrics.parquet", index=False)
    scenario_dict.update(steps=60)
    with pytest.raises(RunFolderError, match="metrics.parquet changed since the run finished"):
        _run(scenario_dict, res.folder, resume=True)


def test_an_extended_run_is_checked_again_after_it_grows(scenario_dict, tmp_path):
    scenario_dict.update(steps=40)
    _run(scenario_dict, tmp_path / "g")
    scenario_dict.update(steps=60)
    res = _run(scenario_dict, tmp_path / "g", resume=True)  # extends: rebuilt parts are hashed
    assert _state(res.folder)["final"]
    scenario_dict.update(steps=80)
    assert _run(scenario_dict, tmp_path / "g", resume=True).steps == 80


def test_a_checkpoint_of_another_market_is_refused_by_name(cut, tmp_path):
    data, folder = cut
    other = dict(data, advertisers=[dict(data["advertisers"][0], group="others")])
    with pytest.raises(RunFolderError):
        _run(other, folder, resume=True)
