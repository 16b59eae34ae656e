"""Procedural synthetic face videos with exact landmarks and FACS labels, written in the
raw BP4D and DISFA layouts (``docs/synthetic-calibration.md``), so that the package's readers,
alignment, folds and trainer run on a fresh machine without the licensed datasets.

Quick start::

    from mgrr_pyg.data.synthetic import generate
    summary = generate("data/synth-bp4d", dataset="BP4D", preset="default", seed=0, workers=2)

or ``mgrr-synth data/synth-bp4d --dataset BP4D --preset default --seed 0 --workers 2 --report``.

Modules: :mod:`.config` (sizes, presets, seeding), :mod:`.identity` (per-subject
appearance), :mod:`.geometry` (neutral shape, what each AU does to the landmarks),
:mod:`.expressions` (AU episodes, co-occurrence, calibrated rates, AU structures), :mod:`.render`
(drawing and camera), :mod:`.writer` (files, resumability), :mod:`.calibration`
(the calibration report), :mod:`.truth` (the AU relations the generator samples from,
``docs/synthetic-truth.md``).
"""
from .calibration import calibration_report
from .config import PRESETS, SynthConfig
from .writer import generate, sequence_plan

__all__ = ["PRESETS", "SynthConfig", "calibration_report", "generate", "sequence_plan"]
