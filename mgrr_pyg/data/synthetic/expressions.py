"""Behaviour of the synthetic subjects: when which AUs are active, and how strongly.

AU intensities evolve in *episodes* (onset, apex, offset) on a simulated 25 fps video
time line, from two kinds of sources combined by taking the maximum per AU:

- an **expression channel**: episodes of one expression prototype at a time
  (happiness 6+12±25, surprise 1+2+25/26, sadness 1+4+15±17, anger 4+7+23/24,
  disgust 9+10±17, pain 4+6+7+9+10, ...), each AU of the prototype taking part with its
  own probability and peak intensity; this gives real faces' co-occurrence structure;
- an **independent channel per AU** (AU "noise": a lone AU7, a bit of AU25 while
  talking, a tonic AU10), which sets each AU's marginal rate.

The process is stationary (it starts well before the first written frame), so marginal
rates do not depend on sequence length. Subjects differ in how often they show each
prototype, how expressive they are overall and how intense their AUs are, as real
subjects do. The per-dataset parameters (:data:`BEHAVIOUR`) were tuned with
:func:`label_rates` so the marginal positive rates come close to the real ones of
``docs/protocol.md`` (BP4D occurrence = intensity >= 1; DISFA = intensity >= 2);
``docs/synthetic-calibration.md`` lists the result.

Labels come from integer intensities ``round(I)`` in 0..5 (FACS A..E = 1..5).

An *AU structure* (:data:`AU_STRUCTURES`, ``SynthConfig.au_structure``) bundles the
behaviour per dataset with how strongly each AU is drawn: ``standard`` is the above;
``tied`` draws some AUs weak and ties each to a strong AU through the prototypes
(:func:`tied_behaviour`, ``docs/synthetic-truth.md``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from mgrr_pyg.facs import ALL_AUS, AU_SETS

from .config import rng_for
from .geometry import RESPONSE_EXPONENT

#: Index of each AU in intensity arrays (``ALL_AUS`` order).
_AU_INDEX = {au: k for k, au in enumerate(ALL_AUS)}

#: Occurrence threshold on the integer intensity, per dataset (BP4D codes presence at
#: any intensity A..E; DISFA's public protocol counts intensity >= 2).
OCCURRENCE_THRESHOLD = {"BP4D": 1, "DISFA": 2}

#: Real-data marginal positive rates (``docs/protocol.md``).
REAL_RATES: dict[str, dict[int, float]] = {
    "BP4D": {1: .19, 2: .15, 4: .21, 6: .46, 7: .59, 10: .59, 12: .56, 14: .47, 15: .18,
             17: .35, 23: .17, 24: .15},
    "DISFA": {1: .05, 2: .03, 4: .18, 6: .09, 9: .04, 12: .16, 25: .36, 26: .14},
}


@dataclass(frozen=True)
class Prototype:
    """An expression prototype: AU -> (probability the AU takes part in an episode,
    mean peak intensity 0..5)."""

    name: str
    aus: Mapping[int, tuple[float, float]]


PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("happiness", {6: (.85, 2.8), 12: (1.0, 3.2), 25: (.5, 2.4), 10: (.5, 2.2),
                            7: (.5, 2.2), 14: (.25, 2.0), 26: (.15, 2.0)}),
    Prototype("surprise", {1: (.95, 3.0), 2: (.9, 3.0), 25: (.75, 2.8), 26: (.6, 2.8)}),
    Prototype("sadness", {1: (.85, 2.6), 4: (.7, 2.6), 15: (.85, 2.6), 17: (.6, 2.5)}),
    Prototype("anger", {4: (1.0, 3.0), 7: (.9, 3.0), 23: (.6, 2.6), 24: (.55, 2.6),
                        17: (.35, 2.2), 10: (.25, 2.0)}),
    Prototype("disgust", {9: (.9, 2.8), 10: (.95, 3.0), 17: (.5, 2.4), 4: (.25, 2.2),
                          15: (.25, 2.0), 7: (.35, 2.2)}),
    Prototype("pain", {4: (.65, 2.8), 6: (.85, 2.8), 7: (.95, 3.0), 9: (.3, 2.5),
                       10: (.85, 2.8), 12: (.35, 2.0), 25: (.35, 2.2)}),
    Prototype("fear", {1: (.9, 2.8), 2: (.75, 2.5), 4: (.45, 2.5), 7: (.35, 2.0),
                       25: (.7, 2.5), 26: (.3, 2.2)}),
    Prototype("embarrassment", {12: (.95, 2.4), 14: (.8, 2.6), 24: (.45, 2.2), 17: (.45, 2.2),
                                6: (.45, 2.0), 15: (.2, 1.8)}),
    Prototype("engagement", {7: (.7, 2.2), 10: (.65, 2.2), 14: (.55, 2.2), 17: (.45, 2.2),
                             23: (.3, 2.0), 25: (.5, 2.2)}),
    Prototype("talking", {25: (.95, 2.8), 26: (.6, 2.6), 10: (.15, 2.0), 17: (.15, 2.0),
                          14: (.15, 2.0)}),
)
PROTOTYPE_NAMES = tuple(p.name for p in PROTOTYPES)
#: Added to every prototype's mean peak: episodes reach B-C on average, D-E often.
PEAK_SHIFT = 0.4


@dataclass(frozen=True)
class BehaviourModel:
    """Per-dataset parameters of the episode process (population level).

    Args:
        prototype_weights: relative frequency of each prototype's episodes.
        expression_occupancy: share of time inside an expression episode, per channel.
        episode_frames: (min, max) expression episode length, video frames (25 fps).
        noise_occupancy: per AU, share of time inside an independent episode of that AU.
        noise_peak: (min, max) peak intensity of independent episodes (uniform).
        noise_frames: (min, max) independent episode length, video frames.
        expression_channels: independent expression channels (blends: an emotion and,
            say, a social smile at once). (default: ``1``)
        peak_spread: standard deviation of an episode AU's peak around its prototype mean.
            (default: ``0.8``)
        subject_spread: standard deviation of the per-subject log-odds / log-weight shifts.
            (default: ``0.6``)
        prototypes: the expression prototypes the episodes are drawn from; the
            ``prototype_weights`` are looked up by their names. (default: :data:`PROTOTYPES`)
    """

    prototype_weights: Mapping[str, float]
    expression_occupancy: float
    episode_frames: tuple[float, float]
    noise_occupancy: Mapping[int, float]
    noise_peak: tuple[float, float]
    noise_frames: tuple[float, float]
    expression_channels: int = 1
    peak_spread: float = 0.8
    subject_spread: float = 0.6
    prototypes: tuple[Prototype, ...] = PROTOTYPES

    def prototype_probabilities(self) -> np.ndarray:
        """``[P]`` population probability of each of :attr:`prototypes` per episode."""
        weights = np.array([self.prototype_weights.get(p.name, 0.0) for p in self.prototypes])
        return weights / weights.sum()


BEHAVIOUR: dict[str, BehaviourModel] = {
    "BP4D": BehaviourModel(
        prototype_weights={"happiness": 4.5, "surprise": 0.8, "sadness": 0.8, "anger": 0.6,
                           "disgust": 0.8, "pain": 1.8, "fear": 0.4, "embarrassment": 2.0,
                           "engagement": 2.6, "talking": 0.5},
        expression_occupancy=0.7,
        episode_frames=(50.0, 175.0),
        noise_occupancy={1: .057, 2: .087, 4: .001, 6: .084, 7: .312, 9: .001, 10: .304, 12: .204,
                         14: .279, 15: .09, 17: .152, 23: .091, 24: .057, 25: .001, 26: .005},
        noise_peak=(0.8, 3.8),
        noise_frames=(30.0, 150.0),
        expression_channels=2,
    ),
    "DISFA": BehaviourModel(
        prototype_weights={"happiness": 1.25, "surprise": 0.18, "sadness": 0.4, "anger": 0.3,
                           "disgust": 0.5, "pain": 0.15, "fear": 0.25, "embarrassment": 0.5,
                           "engagement": 0.4, "talking": 3.0},
        expression_occupancy=0.3,
        episode_frames=(50.0, 175.0),
        noise_occupancy={1: .001, 2: .008, 4: .183, 6: .001, 7: .026, 9: .007, 10: .001, 12: .063,
                         14: .001, 15: .018, 17: .031, 23: .03, 24: .022, 25: .337, 26: .049},
        noise_peak=(1.0, 4.0),
        noise_frames=(30.0, 150.0),
        expression_channels=2,
    ),
}


@dataclass(frozen=True)
class AUStructure:
    """How the AUs of a synthetic set relate and how visible each one is: the behaviour
    (which AUs co-occur) and the strength of each AU's image cue.

    Args:
        description: what the structure is, in one line for people.
        behaviour: per dataset, the episode process.
        cue_scale: per dataset, AU -> factor on the intensity that is *drawn*; the labels
            keep the full intensity. AUs not listed are drawn as labelled.
        ties: per dataset, weak AU -> the strong AU it was tied to (how the structure was
            built; read by the tests and the docs).
    """

    description: str
    behaviour: Mapping[str, BehaviourModel]
    cue_scale: Mapping[str, Mapping[int, float]]
    ties: Mapping[str, Mapping[int, int]]

    def cue_vector(self, dataset: str) -> np.ndarray | None:
        """``[15]`` factors on the drawn intensities (``ALL_AUS`` order), or ``None`` when
        every AU is drawn as labelled (then nothing is multiplied: the output stays
        bit-identical to the generator before AU structures existed)."""
        scale = self.cue_scale.get(dataset, {})
        if not scale:
            return None
        vector = np.ones(len(ALL_AUS))
        for au, factor in scale.items():
            vector[_AU_INDEX[au]] = factor
        return vector


#: Participation of a weak AU in the prototypes of its strong partner, and the least
#: participation of the partner for a prototype to count as one of its own.
TIE_PARTICIPATION = 0.9
#: How much of its effect a weak AU shows (landmark displacement, wrinkle depth: the
#: geometry's response ``(I / 5) ** 0.8``), as a share of what its labelled intensity shows.
WEAK_CUE_SHARE = 0.15
#: The factor on a weak AU's drawn intensity that gives :data:`WEAK_CUE_SHARE` (~0.093).
WEAK_CUE_SCALE = WEAK_CUE_SHARE ** (1.0 / RESPONSE_EXPONENT)
#: Weak AU -> strong AU, per dataset (AU numbers): 6 -> 12 (happiness, embarrassment),
#: BP4D 2 -> 1 (surprise, fear) and 23 -> 7 (anger, pain), DISFA 26 -> 25 (talking).
#: Chosen so that every weak AU stays frequent enough (>= 5 % of frames) for its F1 to
#: mean something on a test fold; DISFA's AU2 (2 %) would not.
TIED_AUS: dict[str, dict[int, int]] = {"BP4D": {2: 1, 6: 12, 23: 7}, "DISFA": {6: 12, 26: 25}}


def tied_behaviour(model: BehaviourModel, ties: Mapping[int, int],
                   participation: float = TIE_PARTICIPATION) -> BehaviourModel:
    """``model`` with each weak AU ``w`` of ``ties`` bound to its strong AU ``s``: ``w``
    takes part (with probability ``participation``, its mean peak kept, 2.8 where it
    was not in the prototype) in exactly the prototypes in which ``s`` takes part with
    probability >= ``participation``, leaves all others, and has no independent channel.
    So ``w`` is (nearly) never on without ``s``, and on with ``s`` in most of ``s``'s
    expressions."""
    prototypes = []
    for proto in model.prototypes:
        aus = dict(proto.aus)
        for weak, strong in ties.items():
            peak = aus.pop(weak, (0.0, 2.8))[1]
            if aus.get(strong, (0.0, 0.0))[0] >= participation:
                aus[weak] = (participation, peak)
        prototypes.append(Prototype(proto.name, aus))
    noise = {au: (0.0 if au in ties else rate) for au, rate in model.noise_occupancy.items()}
    return dataclasses.replace(model, prototypes=tuple(prototypes), noise_occupancy=noise)


#: The AU structures a synthetic set can have (``SynthConfig.au_structure``).
AU_STRUCTURES: dict[str, AUStructure] = {
    "standard": AUStructure(
        description="real faces' co-occurrence structure, every AU drawn as labelled",
        behaviour=BEHAVIOUR, cue_scale={}, ties={}),
    "tied": AUStructure(
        description=(f"weak AUs (image cue at {WEAK_CUE_SHARE:.0%} of normal) tied to strong "
                     "ones: " + "; ".join(f"{d} " + ", ".join(f"AU{w}->AU{s}" for w, s in t.items())
                                         for d, t in TIED_AUS.items())),
        behaviour={d: tied_behaviour(m, TIED_AUS[d]) for d, m in BEHAVIOUR.items()},
        cue_scale={d: {w: WEAK_CUE_SCALE for w in t} for d, t in TIED_AUS.items()},
        ties=TIED_AUS),
}


@dataclass(frozen=True)
class SubjectBehaviour:
    """One subject's behaviour: the population model shifted per subject."""

    prototype_probs: np.ndarray  # [P] probabilities of each prototype per episode
    expression_occupancy: float
    noise_occupancy: np.ndarray  # [15]
    intensity_bias: float


def _logit(p: float | np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: float | np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def subject_behaviour(seed: int, dataset: str, subject: str,
                      model: BehaviourModel | None = None) -> SubjectBehaviour:
    """The behaviour of ``subject``: a deterministic function of (seed, dataset, subject)."""
    model = BEHAVIOUR[dataset] if model is None else model
    rng = rng_for(seed, dataset, subject, purpose="behaviour")
    spread = model.subject_spread
    weights = np.array([model.prototype_weights.get(p.name, 0.0) for p in model.prototypes])
    weights = weights * np.exp(rng.normal(0.0, 1.2 * spread, size=len(weights)))
    occupancy = float(_sigmoid(_logit(model.expression_occupancy) + rng.normal(0.0, spread)))
    noise = np.array([model.noise_occupancy.get(au, 0.0) for au in ALL_AUS])
    shift = rng.normal(0.0, 0.6 * spread) + rng.normal(0.0, spread, size=len(ALL_AUS))
    noise = np.where(noise > 0, _sigmoid(_logit(noise) + shift), 0.0)
    bias = float(rng.normal(0.0, 0.35))
    return SubjectBehaviour(weights / weights.sum(), occupancy, noise, bias)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(times: np.ndarray, start: float, length: float, onset: float, offset: float) -> np.ndarray:
    """Onset-apex-offset profile in 0..1 of an episode at ``times`` (video frames)."""
    u = (times - start) / length
    rise = _smoothstep(u / onset)
    fall = _smoothstep((1.0 - u) / offset)
    return np.where((u > 0) & (u < 1), np.minimum(rise, fall), 0.0)


def _episodes(rng: np.random.Generator, occupancy: float, frames: tuple[float, float],
              t_end: float) -> list[tuple[float, float]]:
    """Start and length of the episodes of a stationary on/off renewal process that
    overlap ``[0, t_end)``; it starts well before 0 so its state at 0 is stationary."""
    if occupancy <= 0:
        return []
    mean_length = 0.5 * (frames[0] + frames[1])
    mean_gap = mean_length * (1.0 - occupancy) / occupancy
    t = -4.0 * (mean_length + mean_gap) - frames[1]
    out = []
    while True:
        t += rng.exponential(mean_gap)
        length = rng.uniform(*frames)
        if t >= t_end:
            return out
        if t + length > 0:
            out.append((t, length))
        t += length


def sample_intensities(rng: np.random.Generator, behaviour: SubjectBehaviour, times: np.ndarray,
                       model: BehaviourModel) -> np.ndarray:
    """Continuous AU intensities of one sequence at ``times`` (video frame numbers from 0).

    Returns:
        ``[T, 15]`` intensities in 0..5, ``ALL_AUS`` order.
    """
    times = np.asarray(times, dtype=np.float64)
    intensity = np.zeros((len(times), len(ALL_AUS)))
    t_end = float(times[-1]) + 1.0
    # The expression channels: one prototype per episode.
    episodes = [e for _ in range(model.expression_channels)
                for e in _episodes(rng, behaviour.expression_occupancy, model.episode_frames, t_end)]
    for start, length in episodes:
        proto = model.prototypes[rng.choice(len(model.prototypes), p=behaviour.prototype_probs)]
        onset, offset = rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.4)
        for au, (probability, mean_peak) in proto.aus.items():
            if rng.random() >= probability:
                continue
            peak = mean_peak + PEAK_SHIFT + behaviour.intensity_bias + rng.normal(0.0, model.peak_spread)
            lag = rng.uniform(-0.08, 0.08) * length  # AUs of one expression do not start in lockstep
            env = _envelope(times, start + lag, length, onset, offset)
            np.maximum(intensity[:, _AU_INDEX[au]], np.clip(peak, 0.3, 5.0) * env,
                       out=intensity[:, _AU_INDEX[au]])
    # Independent per-AU channels.
    for k, occupancy in enumerate(behaviour.noise_occupancy):
        for start, length in _episodes(rng, float(occupancy), model.noise_frames, t_end):
            peak = rng.uniform(*model.noise_peak) + 0.5 * behaviour.intensity_bias
            env = _envelope(times, start, length, rng.uniform(0.15, 0.4), rng.uniform(0.15, 0.4))
            np.maximum(intensity[:, k], np.clip(peak, 0.3, 5.0) * env, out=intensity[:, k])
    return np.clip(intensity, 0.0, 5.0)


def integer_intensity(intensity: np.ndarray) -> np.ndarray:
    """FACS intensity codes 0..5 (0 = absent, 1..5 = A..E) from continuous intensities."""
    return np.clip(np.rint(intensity), 0, 5).astype(np.int64)


def occurrence(intensity: np.ndarray, dataset: str) -> np.ndarray:
    """0/1 occurrence from continuous intensities with the dataset's threshold."""
    return (integer_intensity(intensity) >= OCCURRENCE_THRESHOLD[dataset]).astype(np.int64)


def sequence_times(frames: int, frame_step: int) -> np.ndarray:
    """Video times (frames from the sequence start) of the written frames."""
    return np.arange(int(frames), dtype=np.float64) * int(frame_step)


def sequence_intensities(seed: int, dataset: str, subject: str, sequence: str, frames: int,
                         frame_step: int, au_structure: str = "standard") -> np.ndarray:
    """``[frames, 15]`` continuous intensities of one sequence: a pure function of its
    names (so labels can be sampled without rendering, and match what is rendered), in
    the behaviour of ``au_structure`` (a key of :data:`AU_STRUCTURES`)."""
    model = au_structure_named(au_structure).behaviour[dataset]
    behaviour = subject_behaviour(seed, dataset, subject, model)
    rng = rng_for(seed, dataset, subject, sequence, purpose="intensities")
    return sample_intensities(rng, behaviour, sequence_times(frames, frame_step), model)


def au_structure_named(name: str) -> AUStructure:
    """The :class:`AUStructure` called ``name``; a clear error for an unknown name."""
    if name not in AU_STRUCTURES:
        raise ValueError(f"au_structure: expected one of {sorted(AU_STRUCTURES)}, found {name!r}")
    return AU_STRUCTURES[name]


def label_sample(dataset: str, seed: int = 0, subjects: Sequence[str] | None = None,
                 sequences: Sequence[str] = ("T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8"),
                 frames: int = 100, frame_step: int = 20, au_structure: str = "standard") -> np.ndarray:
    """Continuous intensities ``[N, 15]`` of many sequences, without rendering.

    DISFA has one sequence per subject, so pass ``sequences=("",)`` to mirror the real
    layout, or several names to draw more independent sequences per subject.
    """
    from .config import resolve_subjects

    out = [sequence_intensities(seed, dataset, s, q, frames, frame_step, au_structure)
           for s in resolve_subjects(dataset, subjects) for q in sequences]
    return np.concatenate(out, axis=0)


def label_rates(intensity: np.ndarray, dataset: str, aus: Sequence[int] | None = None) -> dict[int, float]:
    """Marginal positive rate per AU of ``[N, 15]`` intensities (dataset's threshold)."""
    aus = AU_SETS[dataset] if aus is None else aus
    positive = occurrence(intensity, dataset)
    return {au: float(positive[:, _AU_INDEX[au]].mean()) for au in aus}


__all__ = [
    "AU_STRUCTURES",
    "AUStructure",
    "BEHAVIOUR",
    "OCCURRENCE_THRESHOLD",
    "PROTOTYPES",
    "REAL_RATES",
    "BehaviourModel",
    "Prototype",
    "SubjectBehaviour",
    "TIED_AUS",
    "au_structure_named",
    "integer_intensity",
    "label_rates",
    "label_sample",
    "occurrence",
    "sample_intensities",
    "sequence_intensities",
    "sequence_times",
    "subject_behaviour",
    "tied_behaviour",
]
