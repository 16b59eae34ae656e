"""Ablations: the seven Table 6 settings and K = 1/2/3 (Table 7) on one fold and budget,
several seeds each; prints and writes a markdown table of mean F1 (mean and spread).
Example at a tiny budget: ``python examples/run_ablation.py --epochs 2 --seeds 0 1``."""
from mgrr_pyg.train.cli import ablation_main

if __name__ == "__main__":
    ablation_main(prog="run_ablation.py")
