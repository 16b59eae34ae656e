"""Optimisers and learning-rate schedules by name: the registry the trainer builds from.

``TrainConfig.optimizer`` (``--optimizer``) and ``TrainConfig.lr_scheduler``
(``--lr-scheduler``) each name an entry registered here; the entry builds the torch object
from the config's settings (``lr``, ``momentum``, ``nesterov``, ``weight_decay``;
``lr_step``, ``lr_gamma``, ``epochs``...) and says in words what it built (the
``Schedule`` line of ``results.md``). Adding an optimiser or a schedule is one decorated
function, here or in user code before the run::

    @register_scheduler("cosine", help="cosine annealing from --lr to 0 over --epochs",
                        describe=lambda config: "cosine lr")
    def cosine(optimizer, config):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)

A schedule is stepped once per epoch, after the epoch's last optimiser step. The
optimiser's and the schedule's states are stored in every checkpoint, so a resumed run
continues both. A setting of its own (a warm-up length, say) is one more
:class:`~mgrr_pyg.train.config.TrainConfig` field, which is also its command-line option.

This module imports no other part of the package: the config validates its names against
it without an import circle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch

# The builders read a TrainConfig's fields. The type is not imported, not even for type
# checking: config.py imports this module, and this one stays below it.
TrainConfig = Any


@dataclass(frozen=True)
class Entry:
    """One registered optimiser or schedule.

    Attributes:
        name (str): The ``--optimizer`` / ``--scheduler`` value.
        build (callable): ``build(params, config)`` -> optimiser, or
            ``build(optimizer, config)`` -> LR scheduler.
        help (str): One line for ``--help``.
        describe (callable): ``describe(config_dict)`` -> what it runs, in words, from a
            config as stored in ``config.json`` / ``results.json`` (plain dict).
    """

    name: str
    build: Callable[..., Any]
    help: str
    describe: Callable[[Mapping], str]


_OPTIMIZERS: dict[str, Entry] = {}
_SCHEDULERS: dict[str, Entry] = {}


def _register(registry: dict, kind: str, name: str, help: str,
              describe: Optional[Callable[[Mapping], str]], replace: bool):
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_{kind}: expected a non-empty name, found {name!r}")

    def record(build):
        if name in registry and not replace:
            raise ValueError(f"register_{kind}: {name!r} is already registered "
                             f"({', '.join(registry)}); pass replace=True to redefine it")
        registry[name] = Entry(name, build, help, describe or (lambda config: name))
        return build

    return record


def register_optimizer(name: str, *, help: str, describe: Optional[Callable[[Mapping], str]] = None,
                       replace: bool = False):
    """Decorator: record ``build(params, config) -> torch.optim.Optimizer`` as the
    optimiser ``name`` (``--optimizer name``)."""
    return _register(_OPTIMIZERS, "optimizer", name, help, describe, replace)


def register_scheduler(name: str, *, help: str, describe: Optional[Callable[[Mapping], str]] = None,
                       replace: bool = False):
    """Decorator: record ``build(optimizer, config) -> LR scheduler`` (stepped once per
    epoch) as the schedule ``name`` (``--lr-scheduler name``)."""
    return _register(_SCHEDULERS, "scheduler", name, help, describe, replace)


def list_optimizers() -> list[str]:
    """The registered optimiser names, in registration order."""
    return list(_OPTIMIZERS)


def list_schedulers() -> list[str]:
    """The registered schedule names, in registration order."""
    return list(_SCHEDULERS)


def optimizer_entry(name: str) -> Entry:
    """The registered optimiser ``name``; a ValueError listing the choices otherwise."""
    return _entry(_OPTIMIZERS, "optimizer", name)


def scheduler_entry(name: str) -> Entry:
    """The registered schedule ``name``; a ValueError listing the choices otherwise."""
    return _entry(_SCHEDULERS, "lr_scheduler", name)


def _entry(registry: dict, field: str, name: str) -> Entry:
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ValueError(f"{field} (--{field.replace('_', '-')}): expected one of "
                         f"{', '.join(registry)}, "
                         f"found {name!r}") from None


def build_optimizer(params, config: "TrainConfig") -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` over ``params``."""
    return optimizer_entry(config.optimizer).build(params, config)


def build_scheduler(optimizer: torch.optim.Optimizer, config: "TrainConfig"):
    """The learning-rate schedule ``config.lr_scheduler`` of ``optimizer``."""
    return scheduler_entry(config.lr_scheduler).build(optimizer, config)


def describe_optimizer(config: Mapping) -> str:
    """What optimiser a stored config (plain dict) ran, in words."""
    entry = _OPTIMIZERS.get(config["optimizer"])
    if entry is None:  # a name registered by the user's own code, not by this process
        return f"{config['optimizer']} lr {config['lr']:g}"
    return entry.describe(config)


def describe_scheduler(config: Mapping) -> str:
    """What learning-rate schedule a stored config (plain dict) ran, in words. A config
    written before the schedule was a setting ran the step schedule."""
    name = config.get("lr_scheduler", "step")
    entry = _SCHEDULERS.get(name)
    return entry.describe(config) if entry is not None else f"{name} lr schedule"


# -- the entries -----------------------------------------------------------------------
def _describe_sgd(config: Mapping) -> str:
    momentum = config["momentum"]
    nesterov = config.get("nesterov", True) and momentum > 0
    moment = (f"{'Nesterov ' if nesterov else ''}momentum {momentum:g}" if momentum > 0
              else "no momentum")
    return f"SGD lr {config['lr']:g}, {moment}, weight decay {config['weight_decay']:g}"


@register_optimizer("sgd", describe=_describe_sgd,
                    help="the paper's, with --momentum, Nesterov's unless --no-nesterov")
def sgd(params, config: "TrainConfig") -> torch.optim.Optimizer:
    # torch refuses Nesterov without momentum; --momentum 0 means plain SGD
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0,
                           weight_decay=config.weight_decay)


@register_optimizer("adamw", describe=lambda config: (f"AdamW lr {config['lr']:g}, weight decay "
                                                      f"{config['weight_decay']:g}"),
                    help="the quick schedule's, --momentum unused (a few hundred steps from "
                         "scratch are too few for SGD at lr 0.01)")
def adamw(params, config: "TrainConfig") -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _describe_step(config: Mapping) -> str:
    if config["lr_gamma"] == 1:
        return "constant lr"
    every = config["lr_step"]
    return f"lr x{config['lr_gamma']:g} every {every} epoch{'s' if every != 1 else ''}"


@register_scheduler("step", describe=_describe_step,
                    help="the paper's, the lr times --lr-gamma every --lr-step epochs")
def step(optimizer: torch.optim.Optimizer, config: "TrainConfig"):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)


__all__ = ["Entry", "build_optimizer", "build_scheduler", "describe_optimizer", "describe_scheduler",
           "list_optimizers", "list_schedulers", "optimizer_entry", "register_optimizer",
           "register_scheduler", "scheduler_entry"]
