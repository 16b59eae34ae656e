"""Fixtures of the data tests; the raw-tree writers live in ``raw_tree_helpers`` so test
modules import them by a name no other test folder uses."""
from raw_tree_helpers import bp4d_tree, disfa_tree, prepared_bp4d  # noqa: F401  (fixtures)
