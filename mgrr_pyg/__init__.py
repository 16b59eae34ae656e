"""mgrr_pyg: MGRR-Net (multi-level graph relational reasoning for facial action unit
detection, Ge et al., ACM TIST 2024) as a modular graph-learning package on PyTorch
Geometric."""

__version__ = "0.1.0"


def create_model(name: str = "mgrr_bp4d", **overrides):
    """Build a model from a named preset (see :mod:`mgrr_pyg.model`)."""
    from mgrr_pyg.model import create_model as _create

    return _create(name, **overrides)


__all__ = ["__version__", "create_model"]
