"""mgrr_pyg: MGRR-Net (multi-level graph relational reasoning for facial action unit
detection, Ge et al., ACM TIST 2024) as a modular graph-learning package on PyTorch
Geometric."""

__version__ = "0.1.0"

# Before anything imports torch: OpenMP threads that sleep rather than spin when idle
# (OMP_WAIT_POLICY=PASSIVE unless set; only if torch is not imported yet), so a run on a
# CPU shared with other jobs slows down gracefully. See mgrr_pyg/utils/threads.py.
from mgrr_pyg.utils.threads import prefer_passive_openmp_wait as _prefer_passive_openmp_wait

_prefer_passive_openmp_wait()


def __getattr__(name: str):
    # create_model is mgrr_pyg.model.presets.create_model itself, imported on first use so
    # that `import mgrr_pyg` (the data and plotting tools) does not load the model stack.
    if name == "create_model":
        from mgrr_pyg.model.presets import create_model

        return create_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "create_model"]
