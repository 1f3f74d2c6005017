"""Shared test settings: single-threaded torch (small batched ops are fastest that way, and
two pytest processes on a 2-core machine must not fight over OpenMP threads)."""

import copy

import pytest
import torch

torch.set_num_threads(1)

BASE_SCENARIO = {
    "name": "test",
    "seed": 3,
    "steps": 50,
    "auctions_per_step": 16,
    "replicas": 2,
    "mechanism": {"kind": "second_price"},
    "feedback": {"kind": "full"},
    "advertisers": [
        {
            "group": "bidders",
            "count": 3,
            "value": {"dist": "uniform", "low": 0.0, "high": 1.0},
            "strategy": {"kind": "hedge", "multipliers": {"low": 0.0, "high": 1.5, "n": 16}},
        }
    ],
    "metrics": {"every": 5, "deviation_grid": {"low": 0.0, "high": 1.5, "n": 7}},
}


@pytest.fixture
def scenario_dict():
    """A fresh copy of a small valid scenario mapping, to modify per test."""
    return copy.deepcopy(BASE_SCENARIO)
