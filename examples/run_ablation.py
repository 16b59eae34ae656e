"""Ablations as an instrument: the seven Table 6 settings, K = 1 / 3 (Table 7; the full
model is K = 2) and setting 2 with a randomly initialised adjacency (section 4.5.1), on one
budget, several seeds each, on synthetic DISFA and BP4D; one process per core, each run in
``<output>/<DATASET>/<setting>-seed<s>/``; a rerun skips finished runs and resumes
interrupted ones, and refuses a folder of another budget. The report (``ablation.md`` /
``ablation.json``): per setting mean and std over seeds of F1 and AUC, the label-only
baseline per seed, and the paired bootstrap 95 % interval of its F1 difference to the full
model, with the smallest difference the study resolves.

A small demonstration (6 runs): ``python examples/run_ablation.py --dataset disfa --settings
full setting1 --seeds 0 1 2 --epochs 3 --max-train-frames 480 --max-test-frames 300
--output runs/ablation-demo``."""
from mgrr_pyg.train.cli import ablation_main

if __name__ == "__main__":
    ablation_main(prog="run_ablation.py")
