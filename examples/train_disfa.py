"""Train and evaluate MGRR-Net on one DISFA fold, usually starting from a BP4D model
(the paper): ``python examples/train_disfa.py --init-from runs/<bp4d run>/last.pt``.
BP4D branches map AU1, 2, 4, 6, 12 -> same, AU23 -> AU25, AU17 -> AU26; AU9 starts fresh.
With no ``--data-root`` a synthetic DISFA-layout dataset is generated in the cache.
"""
from mgrr_pyg.train.cli import main

if __name__ == "__main__":
    main(dataset="DISFA", prog="train_disfa.py")
