"""A forward that raises leaves the module as it found it.

In train mode a forward writes state as it goes: every BatchNorm updates its
``running_mean``, ``running_var`` and ``num_batches_tracked`` buffers when it runs (the
only buffers MGRR-Net's forward writes; parameters change only in the optimiser step).
A forward that fails halfway (non-finite predicted landmarks, out of memory, Ctrl-C)
would leave the first half of the network's statistics moved by a batch that was never
used, and a failure with NaN in it leaves NaN statistics that break every later eval-mode
call. :func:`buffers_restored_on_error` undoes that.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def buffers_restored_on_error(module: nn.Module) -> Iterator[None]:
    """Snapshot the buffers of every submodule of ``module`` in train mode (the ones a
    forward may write); if the body raises (any exception, Ctrl-C included), put them
    back, same tensor objects with bitwise the same values, and re-raise.

    Eval-mode submodules are not copied: a forward in eval mode writes no buffer (checked
    by the tests for every preset). The cost is one copy of the train-mode buffers per
    call, 55 small tensors for MGRR-Net (BatchNorm statistics), against a training step.
    """
    saved = [(owner, buffer_name, buffer, buffer.clone())
             for owner in module.modules() if owner.training
             for buffer_name, buffer in owner.named_buffers(recurse=False)]
    try:
        yield
    except BaseException:
        with torch.no_grad():
            for owner, buffer_name, buffer, copy in saved:
                buffer.copy_(copy)
                setattr(owner, buffer_name, buffer)  # in case the forward re-assigned it
        raise


__all__ = ["buffers_restored_on_error"]
