"""Deprecated name of :mod:`mgrr_pyg.data.preparation` (the preparation, ``mgrr-prepare``;
the list format it writes is :mod:`mgrr_pyg.data.prepared_lists`). Every name still
resolves here, with a :class:`DeprecationWarning`: ``from mgrr_pyg.data.prepare import
prepare_dataset`` keeps working; write ``from mgrr_pyg.data import prepare_dataset``."""
from ._moved import forward_to

__getattr__, __dir__ = forward_to(
    __name__, "mgrr_pyg.data.preparation",
    moved={"MANIFEST": "mgrr_pyg.data.prepared_lists.PREPARED_MANIFEST"})
