"""The synthetic generator's true AU relations (the prototype co-membership graph) and the
``tied`` preset: weak AUs tied to strong ones; the existing presets unchanged."""
from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint_synthetic import fingerprint
from mgrr_pyg.data.synthetic import SynthConfig, generate, sequence_plan
from mgrr_pyg.data.synthetic.calibration import config_from_root
from mgrr_pyg.data.synthetic.config import rng_for
from mgrr_pyg.data.synthetic.expressions import AU_STRUCTURES, BEHAVIOUR, sample_intensities, subject_behaviour
from mgrr_pyg.data.synthetic.truth import (label_only_auc, preset_truth, prototype_cooccurrence,
                                           truth_edges, truth_graph, visual_cue_strength)
from mgrr_pyg.facs import ALL_AUS, AU_SETS

COLUMN = {au: k for k, au in enumerate(ALL_AUS)}

#: Recorded with ``tests/data/fingerprint_synthetic.py`` on the generator *before* the
#: AU structures (and the ``tied`` preset) were added (the package tree of commit f36f76e,
#: with ``rendered_frame`` standing for its ``render_sequence`` loop body): the cached data
#: of runs and the committed results were made with these presets.
BEFORE = {
    "tiny/BP4D": {"config": "01e5a66f84640bdb", "labels": "cc260a8648baf261", "landmarks": "831203e50cde651e",
        "pixels": [[-0.3321, -0.1144, -0.2902, 0.0216, 0.5371, -0.0862],
                   [-0.1355, -0.0355, -0.2066, 0.117, 0.5616, 0.1387],
                   [-0.3272, 0.1574, -0.2231, 0.0334, 0.2916, -0.1676],
                   [-0.2545, -0.3092, -0.2662, -0.1223, 0.3443, -0.0419],
                   [-0.2673, -0.1533, -0.2432, -0.1917, 0.2635, 0.0064]]},
    "tiny/DISFA": {"config": "0d8c856fd3f67890", "labels": "d2a4d6117af5645b", "landmarks": "1310c0dbdfa033c4",
        "pixels": [[0.278, -0.1812, -0.317, 0.3977, 0.6174, -0.5433],
                   [0.3711, -0.1763, -0.2963, 0.3844, 0.4482, -0.2927],
                   [0.3139, -0.1408, -0.3189, 0.4014, 0.4777, -0.314],
                   [0.0842, -0.2731, -0.8242, 0.0331, 0.5724, 0.0832],
                   [-0.0226, -0.1854, -0.655, -0.0724, 0.8282, 0.0295]]},
    "default/BP4D": {"config": "8ddb63eff0383530", "labels": "ae875f36bfb338fa", "landmarks": "26fabc795ff8e9ec",
        "pixels": [[-0.2387, -0.3923, -0.3762, 0.1683, -0.6371, 0.3709],
                   [-0.3612, -0.3081, -0.3077, 0.1866, -0.6991, 0.5744],
                   [-0.2994, -0.2008, -0.2138, 0.4732, -0.6991, 0.4506],
                   [-0.6145, -0.2806, -0.3239, -0.3734, 0.4265, 0.0974],
                   [-0.3285, -0.4551, -0.1379, -0.2125, 0.531, -0.021]]},
    "default/DISFA": {"config": "9ecf72db7db73179", "labels": "4283bdadf7429748", "landmarks": "a9c62769204eff79",
        "pixels": [[-0.0596, 0.031, -0.5551, -0.1188, 0.7402, -0.1049],
                   [-0.2525, -0.1239, -0.8139, -0.0542, 0.4243, -0.3257],
                   [-0.271, -0.0432, -0.6104, 0.0375, 0.5625, -0.2721],
                   [-0.2281, -0.1615, -0.74, -0.2082, 0.7879, 0.1613],
                   [-0.009, -0.1863, -0.8012, 0.1278, 0.6908, 0.1805]]},
}


# -- the existing presets are unchanged -----------------------------------------------------
@pytest.mark.parametrize("key", sorted(BEFORE))
def test_existing_presets_generate_what_they_did_before_au_structures(key):
    preset, dataset = key.split("/")
    found = fingerprint(preset, dataset)
    expected = BEFORE[key]
    assert {k: found[k] for k in ("config", "labels", "landmarks")} == \
        {k: expected[k] for k in ("config", "labels", "landmarks")}
    np.testing.assert_allclose(found["pixels"], expected["pixels"], atol=2e-3)


def test_tied_preset_is_recorded_so_it_never_reuses_default_data():
    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.data_sources import synthetic_name

    tied, default = SynthConfig.from_preset("tied", "DISFA"), SynthConfig.from_preset("default", "DISFA")
    assert tied.au_structure == "tied" and default.au_structure == "standard"
    assert tied.to_dict()["au_structure"] == "tied" and "au_structure" not in default.to_dict()
    assert tied.num_frames == default.num_frames  # the sizes of default
    names = {preset: synthetic_name(TrainConfig(dataset="DISFA", synthetic_preset=preset))
             for preset in ("tied", "default")}
    assert names["tied"] != names["default"]
    plan_tied = sequence_plan(tied, "SN001", "")
    plan_default = sequence_plan(default, "SN001", "")
    assert not np.array_equal(plan_tied.labels, plan_default.labels)


def test_unknown_au_structure_is_refused_by_name():
    with pytest.raises(ValueError, match=r"au_structure: expected one of \['standard', 'tied'\], found 'tide'"):
        SynthConfig(dataset="DISFA", au_structure="tide")


def test_tied_folder_records_its_structure_and_refuses_the_standard_one(tmp_path):
    root = tmp_path / "tied"
    config = SynthConfig.from_preset("tied", "DISFA", subjects=("SN001",), frames_per_task=3)
    generate(root, config=config, workers=0, progress=False)
    assert json.loads((root / "synth_manifest.json").read_text())["config"]["au_structure"] == "tied"
    assert config_from_root(root) == config
    standard = dataclasses.replace(config, au_structure="standard")
    with pytest.raises(ValueError, match="au_structure"):
        generate(root, config=standard, workers=0, progress=False)


# -- the definition of the truth --------------------------------------------------------------
def test_truth_of_a_hand_worked_example():
    # Two prototypes, pi = (0.75, 0.25); AU0 in p0 always, AU1 in p0 half the time and in
    # p1 always, AU2 only in p1 with 0.4.
    weights = [3.0, 1.0]
    participation = [[1.0, 0.5, 0.0],
                     [0.0, 1.0, 0.4]]
    # P(AU0) = .75, P(AU1) = .375 + .25 = .625, P(AU2) = .1
    # P(0, 1) = .75 * .5 = .375; P(0, 2) = 0; P(1, 2) = .25 * .4 = .1
    expected = np.array([[1.0, .375 / .625, 0.0],
                         [.375 / .75, 1.0, .1 / .1],
                         [0.0, .1 / .625, 1.0]])
    np.testing.assert_allclose(prototype_cooccurrence(weights, participation), expected, atol=1e-12)


def _enumerated(weights, participation):
    """P(i | j) by summing over every prototype and every subset of AUs taking part."""
    weights = np.asarray(weights) / np.sum(weights)
    participation = np.asarray(participation)
    n = participation.shape[1]
    joint, marginal = np.zeros((n, n)), np.zeros(n)
    for p, pi in enumerate(weights):
        for members in itertools.product((0, 1), repeat=n):
            chance = pi * np.prod([a if m else 1 - a for a, m in zip(participation[p], members)])
            on = np.array(members, dtype=bool)
            marginal += chance * on
            joint += chance * np.outer(on, on)
    truth = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            truth[i, j] = 1.0 if i == j else (joint[i, j] / marginal[j] if marginal[j] > 0 else 0.0)
    return truth


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4).flatmap(lambda p: st.integers(2, 4).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0.05, 5.0), min_size=p, max_size=p),
    st.lists(st.lists(st.sampled_from([0.0, 0.1, 0.35, 0.5, 0.8, 1.0]), min_size=n, max_size=n),
             min_size=p, max_size=p)))))
def test_truth_matches_enumerating_every_episode(case):
    weights, participation = case
    truth = prototype_cooccurrence(weights, participation)
    np.testing.assert_allclose(truth, _enumerated(weights, participation), atol=1e-9)
    # Bayes: P(i | j) P(j) = P(j | i) P(i), the joint is symmetric.
    marginal = (np.asarray(weights) / np.sum(weights)) @ np.asarray(participation)
    joint = truth * marginal[None, :]
    off = ~np.eye(len(marginal), dtype=bool)
    np.testing.assert_allclose(joint[off], joint.T[off], atol=1e-9)


def test_bad_prototype_tables_are_refused():
    with pytest.raises(ValueError, match=r"weights \[P\] and participation \[P, n\]"):
        prototype_cooccurrence([1.0], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"participation: expected probabilities in \[0, 1\]"):
        prototype_cooccurrence([1.0], [[1.5, 0.5]])
    with pytest.raises(ValueError, match="aus: the generator models AUs"):
        truth_graph("BP4D", aus=(1, 3))


def _clean_sample(dataset: str, structure: str, subjects: int = 80, frames: int = 400) -> np.ndarray:
    """Generated intensities with only the expression channel: one channel, no
    independent per-AU episodes, no subject shifts of the prototype weights, so that a
    frame shows one episode's prototype (the process the truth describes)."""
    model = dataclasses.replace(AU_STRUCTURES[structure].behaviour[dataset], noise_occupancy={},
                                expression_channels=1, subject_spread=0.0)
    times = np.arange(frames) * 10.0
    out = []
    for s in range(subjects):
        behaviour = subject_behaviour(7, dataset, f"S{s}", model)
        out.append(sample_intensities(rng_for(7, dataset, f"S{s}", purpose="truth-test"), behaviour,
                                      times, model))
    return np.concatenate(out)


@pytest.mark.parametrize("dataset,structure", [("BP4D", "standard"), ("BP4D", "tied"),
                                               ("DISFA", "standard"), ("DISFA", "tied")])
def test_truth_matches_generated_co_occurrence(dataset, structure):
    active = _clean_sample(dataset, structure) > 0  # the AU's envelope is on: it takes part
    on = active.sum(0)
    empirical = (active.T.astype(float) @ active) / np.maximum(on, 1)[None, :]  # [i, j] = P(i | j)
    truth = truth_graph(dataset, structure, aus=ALL_AUS)
    # pairs whose given AU j is on in >= 600 frames (~50 episodes)
    enough = np.broadcast_to(on >= 600, truth.shape) & ~np.eye(len(ALL_AUS), dtype=bool)
    assert enough.sum() > 100
    found, expected = empirical[enough], truth[enough]
    # The AUs of an episode start up to 8 % of its length apart, so frames see ~5 % less
    # overlap than episodes do; the rest is sampling noise (~200 episodes of a rare AU).
    assert np.abs(found - expected).mean() < 0.04
    assert np.abs(found - expected).max() < 0.2
    assert np.corrcoef(found, expected)[0, 1] > 0.97
    # ... and the test tells the orientation: the transposed truth is far off.
    assert np.abs(found - truth.T[enough]).mean() > 0.08
    assert np.corrcoef(found, truth.T[enough])[0, 1] < 0.8


def test_truth_orientation_on_a_known_pair():
    # Surprise and fear carry AU1 with AU2 (P(1 | 2) high); sadness carries AU1 without AU2.
    truth = preset_truth("default", "DISFA")
    aus = AU_SETS["DISFA"]
    one, two = aus.index(1), aus.index(2)
    assert truth[one, two] > 0.85 and truth[two, one] < 0.6
    assert np.all(np.diag(truth) == 1.0)
    assert not truth_edges(truth).diagonal().any()


# -- the tied preset ----------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["BP4D", "DISFA"])
def test_weak_aus_only_take_part_with_their_strong_au(dataset):
    structure = AU_STRUCTURES["tied"]
    ties = structure.ties[dataset]
    model = structure.behaviour[dataset]
    assert ties and set(ties) <= set(AU_SETS[dataset]) and set(ties.values()) <= set(AU_SETS[dataset])
    for weak, strong in ties.items():
        assert model.noise_occupancy.get(weak, 0.0) == 0.0
        homes = [p for p in model.prototypes if weak in p.aus]
        assert homes
        for proto in homes:
            assert proto.aus[strong][0] >= 0.9 and proto.aus[weak][0] == 0.9
        # the truth: the weak AU (nearly) implies its strong one
        truth = truth_graph(dataset, "tied")
        assert truth[AU_SETS[dataset].index(strong), AU_SETS[dataset].index(weak)] > 0.9
    # the other AUs' parts are the standard ones'
    standard = {p.name: p for p in BEHAVIOUR[dataset].prototypes}
    for proto in model.prototypes:
        assert {au: v for au, v in proto.aus.items() if au not in ties} == \
            {au: v for au, v in standard[proto.name].aus.items() if au not in ties}


def test_weak_aus_are_drawn_weak_and_labelled_in_full():
    config = SynthConfig.from_preset("tied", "BP4D")
    plan = sequence_plan(config, config.subjects[0], "T1")
    weak = [COLUMN[au] for au in AU_STRUCTURES["tied"].ties["BP4D"]]
    others = [k for k in range(len(ALL_AUS)) if k not in weak]
    np.testing.assert_array_equal(plan.drawn[:, others], plan.intensity[:, others])
    assert plan.intensity[:, weak].max() > 1.0
    np.testing.assert_allclose(plan.drawn[:, weak], plan.intensity[:, weak] * 0.15 ** (1 / 0.8))
    assert sequence_plan(SynthConfig.from_preset("default", "BP4D"), "F001", "T1").drawn is None


@pytest.mark.parametrize("dataset", ["BP4D", "DISFA"])
def test_weak_aus_have_a_weak_visual_cue(dataset):
    standard = visual_cue_strength(dataset, "standard")
    tied = visual_cue_strength(dataset, "tied")
    ties = AU_STRUCTURES["tied"].ties[dataset]
    for au in AU_SETS[dataset]:
        if au in ties:
            assert 0.1 < tied[au] / standard[au] < 0.3, au
        else:
            assert tied[au] == standard[au]


def test_weak_aus_are_predictable_from_the_other_labels():
    subjects = ("SN001", "SN002", "SN003", "SN004", "SN005", "SN006", "SN007", "SN008", "SN009", "SN010")
    auc = label_only_auc("DISFA", "tied", subjects=subjects, frames=100)
    for weak in AU_STRUCTURES["tied"].ties["DISFA"]:
        assert auc[weak] > 0.8, (weak, auc)
    assert auc[9] < 0.7  # AU9 is in two prototypes of its own: little to learn from the others
