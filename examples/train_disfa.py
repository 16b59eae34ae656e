"""Train and evaluate MGRR-Net on one DISFA fold, usually starting from a BP4D model
(the paper): ``python examples/train_disfa.py --init-from runs/<bp4d run>/last.pt``.
BP4D branches map AU1, 2, 4, 6, 12 -> same, AU23 -> AU25, AU17 -> AU26; AU9 starts fresh;
the region adjacencies start from the DISFA training fold's prior (``--init-adjacency
checkpoint``: BP4D's learned A). Labels: intensity >= 2 (``--intensity-cut N``). The paper's
three folds, DISFA fold f from BP4D fold f: docs/reproduce.md.
With no ``--data-root`` a synthetic DISFA-layout dataset is generated in the cache.
"""
from mgrr_pyg.train.cli import main

if __name__ == "__main__":
    main(dataset="DISFA", prog="train_disfa.py")
