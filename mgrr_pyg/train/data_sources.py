"""Where a run's data comes from: the folder of prepared lists it trains and tests on.

:func:`prepared_root` is the one entry point. ``data_root`` may hold

- prepared lists (used as they are, their images found through ``image_root``),
- a raw BP4D or DISFA release (aligned into a cache folder, reused when prepared), or
- nothing (``data_root=None``): the synthetic dataset is generated into the cache
  (:func:`ensure_synthetic`, reused when a finished copy is there) and prepared there.

The cache is ``cache_dir``, else ``$MGRR_CACHE``, else ``~/.cache/mgrr_pyg``
(:func:`cache_dir`). A new kind of data source is a new branch of :func:`prepared_root`
that ends in a folder of prepared lists: everything after it (the fold, the model, the
training) reads only those lists.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.logging import Log, console
from mgrr_pyg.utils.io import atomic_save_text
from mgrr_pyg.utils.records import plain


def cache_dir(config: TrainConfig) -> Path:
    """``config.cache_dir``, else ``$MGRR_CACHE``, else ``~/.cache/mgrr_pyg``."""
    if config.cache_dir:
        return Path(config.cache_dir).expanduser()
    if os.environ.get("MGRR_CACHE"):
        return Path(os.environ["MGRR_CACHE"]).expanduser()
    return Path.home() / ".cache" / "mgrr_pyg"


def synthetic_name(config: TrainConfig) -> str:
    """Cache folder name of a synthetic set: dataset, preset, seed and a digest of the
    generator's full configuration (sizes, rendering settings, generator version), so a
    package update that changes the generator never reuses data made by the old one."""
    from mgrr_pyg.data.synthetic import SynthConfig

    generator = SynthConfig.from_preset(config.synthetic_preset, config.dataset).to_dict()
    digest = hashlib.sha1(json.dumps(plain(generator), sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.dataset}-{config.synthetic_preset}-seed{config.synthetic_seed}-{digest}"


def ensure_synthetic(config: TrainConfig, log: Log = console) -> Path:
    """Generate the synthetic raw dataset into the cache, unless a finished copy is there."""
    from mgrr_pyg.data.synthetic import generate

    root = cache_dir(config) / "synthetic" / synthetic_name(config)
    marker = root.parent / f"{root.name}.complete.json"
    if marker.exists() and root.exists():
        log(f"synthetic {config.dataset} data: reusing {root}")
        return root
    log(f"synthetic {config.dataset} data: generating preset {config.synthetic_preset!r} "
        f"(seed {config.synthetic_seed}) into {root}")
    summary = generate(root, dataset=config.dataset, preset=config.synthetic_preset,
                       seed=config.synthetic_seed, workers=max(1, config.num_workers),
                       progress=config.progress)
    atomic_save_text(marker, json.dumps(plain(summary), indent=2, sort_keys=True))
    return root


def _cut_suffix(config: TrainConfig) -> str:
    """The cache-folder suffix of a DISFA preparation at ``intensity_cut``: none at the
    default cut (folders prepared before the cut was an option keep their name), else
    ``-cut<N>``, so data binarised at one cut is never reused for another."""
    from mgrr_pyg.data.raw import DISFA_THRESHOLD

    return "" if config.intensity_cut == DISFA_THRESHOLD else f"-cut{config.intensity_cut}"


def check_prepared_cut(config: TrainConfig, root: Path) -> None:
    """Prepared lists of DISFA given in ``data_root``: refuse lists binarised at another
    intensity cut than ``config.intensity_cut`` (read from their ``prepare.json``)."""
    from mgrr_pyg.data.prepared_lists import PREPARED_MANIFEST

    manifest = root / PREPARED_MANIFEST
    if config.dataset != "DISFA" or not manifest.is_file():
        return
    try:
        found = json.loads(manifest.read_text()).get("threshold")
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest}: expected a JSON manifest, {err}") from None
    if found is not None and found != config.intensity_cut:
        raise ValueError(
            f"data_root: the prepared lists in {root} were binarised at DISFA intensity >= "
            f"{found} ({manifest}), this run asks --intensity-cut {config.intensity_cut}: pass "
            f"--intensity-cut {found}, or prepare the raw data again at the cut you want "
            f"(mgrr-prepare RAW OUT --threshold {config.intensity_cut}) and point --data-root at OUT"
        )


def prepared_root(config: TrainConfig, log: Log = console) -> tuple[Path, str]:
    """The folder of prepared lists for ``config`` (preparing raw data if needed) and a
    description of where the data came from. DISFA is binarised at
    ``config.intensity_cut``: a cache folder holds one cut (:func:`_cut_suffix`), an
    explicit ``prepared_root`` holding another cut is refused by the preparation, and so
    are prepared lists of another cut (:func:`check_prepared_cut`)."""
    from mgrr_pyg.data import detect_layout, prepare_dataset

    if config.data_root is None:
        raw = ensure_synthetic(config, log)
        out = Path(config.prepared_root) if config.prepared_root else \
            cache_dir(config) / "prepared" / (synthetic_name(config) + _cut_suffix(config))
        source = (f"synthetic {config.dataset}-layout data (preset {config.synthetic_preset!r}, "
                  f"seed {config.synthetic_seed})")
    else:
        raw = Path(config.data_root).expanduser()
        if not raw.exists():
            raise FileNotFoundError(f"data_root: {raw} does not exist")
        layout = detect_layout(raw)  # ValueError if neither raw nor prepared
        if layout == "prepared":
            check_prepared_cut(config, raw)
            return raw, f"prepared lists in {raw}"
        if config.image_root is not None:
            raise ValueError(
                f"image_root (--image-root): only used with prepared lists in --data-root; {raw} "
                f"holds {layout} data, which is prepared with its own image folder"
            )
        expected = f"raw-{config.dataset.lower()}"
        if layout != expected:
            raise ValueError(
                f"data_root: {raw} has the {layout} layout, but dataset is {config.dataset} "
                f"(expected {expected} or prepared lists); pass --dataset accordingly"
            )
        digest = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:10]
        out = Path(config.prepared_root) if config.prepared_root else \
            cache_dir(config) / "prepared" / f"{config.dataset}-{digest}{_cut_suffix(config)}"
        source = f"raw {config.dataset} in {raw}"
    log(f"preparing (aligning) {raw} -> {out} (reused when already prepared)"
        + (f"; DISFA labels: intensity >= {config.intensity_cut}" if config.dataset == "DISFA" else ""))
    prepare_dataset(raw, out, dataset=config.dataset, workers=max(1, config.num_workers),
                    threshold=config.intensity_cut, progress=config.progress)
    return out, source + f", prepared in {out}"


def missing_images_hint(config: TrainConfig, root: Path) -> str:
    """What a command-line user can do about listed images that are not there."""
    if config.data_root is not None and Path(root) == Path(config.data_root).expanduser():
        return ("point --image-root at the folder the listed paths are relative to, or "
                "--data-root at the folder of the right lists")
    return (f"the prepared data in {root} is incomplete (files deleted after it was prepared?): "
            f"delete {root} and run again to prepare it afresh")


__all__ = ["cache_dir", "check_prepared_cut", "ensure_synthetic", "missing_images_hint",
           "prepared_root", "synthetic_name"]
