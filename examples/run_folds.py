"""The 3-fold protocol: per-fold and mean F1 / accuracy / AUC tables (markdown + CSV)
and a per-AU F1 box plot. Same options as train_bp4d.py plus ``--dataset`` and ``--folds``."""
from mgrr_pyg.train.cli import folds_main

if __name__ == "__main__":
    folds_main(prog="run_folds.py")
