"""Deprecated name of :mod:`mgrr_pyg.data.prepared_lists` (the prepared-list format).
Every name still resolves here, with a :class:`DeprecationWarning`."""
from ._moved import forward_to

__getattr__, __dir__ = forward_to(__name__, "mgrr_pyg.data.prepared_lists")
