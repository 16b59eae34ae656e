"""Train and evaluate MGRR-Net on one BP4D fold.

With no arguments: generates (once) a synthetic BP4D-layout dataset in the cache
(``$MGRR_CACHE`` or ``~/.cache/mgrr_pyg``), prepares it and trains the quick CPU-sized
schedule on fold 1, then prints the results table. Real data:
``python examples/train_bp4d.py --data-root /data/BP4D --fold 2`` (paper schedule).
Several GPUs: ``torchrun --nproc_per_node=N examples/train_bp4d.py ...``.
``--help`` lists every option.
"""
from mgrr_pyg.train.cli import main

if __name__ == "__main__":
    main(dataset="BP4D", prog="train_bp4d.py")
