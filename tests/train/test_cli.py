"""The command line: defaults, parsing and errors for people."""
import pytest

from mgrr_pyg.train.cli import SCHEDULES, build_parser, config_from_args, main


def parse(argv, dataset="BP4D"):
    return config_from_args(build_parser(dataset).parse_args(argv), dataset)


def test_defaults_without_data_are_the_quick_schedule_and_with_data_the_paper():
    quick = parse([])
    assert quick.data_root is None and quick.fold == 1
    assert quick.preset == SCHEDULES["quick"]["preset"] and quick.epochs == SCHEDULES["quick"]["epochs"]
    assert (quick.optimizer, quick.lr) == ("adamw", 1e-3)
    assert (quick.weight_decay, quick.lr_step, quick.lr_gamma, quick.lambda_align) == \
        (5e-4, 2, 0.5, 0.5)
    paper = parse(["--data-root", "/data/BP4D"])
    assert paper.preset == "mgrr_bp4d" and paper.epochs == 15 and paper.max_train_frames is None
    # the paper's optimiser: SGD, Nesterov momentum 0.9, lr 0.01
    assert (paper.optimizer, paper.lr, paper.momentum, paper.nesterov) == ("sgd", 0.01, 0.9, True)
    assert parse(["--optimizer", "sgd", "--lr", "0.05"]).optimizer == "sgd"
    assert parse(["--data-root", "x"], "DISFA").preset == "mgrr_disfa"


def test_options_reach_the_config():
    cfg = parse(["--fold", "3", "--epochs", "2", "--preset", "tiny", "--ablation", "setting3",
                 "--batch-size", "4", "--lr", "0.02", "--workers", "0", "--resume", "--seed", "7",
                 "--device", "cpu", "--amp", "bf16", "--compile", "--val-subjects", "0.25",
                 "--synthetic-preset", "tiny", "--output", "out", "--set", "num_layers=3",
                 "--set", "stem_channels=[8, 16]", "--init-from", "bp4d.pt"])
    assert (cfg.fold, cfg.epochs, cfg.preset, cfg.ablation, cfg.batch_size, cfg.lr, cfg.workers) == \
        (3, 2, "tiny", "setting3", 4, 0.02, 0)
    assert cfg.resume and cfg.seed == 7 and cfg.amp == "bf16" and cfg.compile
    assert cfg.val_subjects == 0.25 and cfg.synthetic_preset == "tiny" and cfg.output == "out"
    assert cfg.model_overrides == {"num_layers": 3, "stem_channels": (8, 16)}
    assert cfg.init_from == "bp4d.pt"
    assert parse(["--val-subjects", "3"]).val_subjects == 3
    preset, overrides = parse(["--preset", "tiny", "--ablation", "setting1"]).resolved_model()
    assert preset == "tiny"
    assert overrides["use_region_graph"] is False and overrides["use_pixel"] is False


@pytest.mark.parametrize("argv, message", [
    (["--fold", "4"], "invalid choice: 4"),
    (["--preset", "nope"], "invalid choice: 'nope'"),
    (["--ablation", "setting9"], "invalid choice: 'setting9'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--epochs", "0"], "expected a positive integer"),
    (["--val-subjects", "-1"], "expected a positive count or fraction"),
    (["--set", "num_layers"], "expected KEY=VALUE"),
    (["--amp", "fp8"], "invalid choice: 'fp8'"),
])
def test_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser("BP4D").parse_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_data_root_neither_raw_nor_prepared_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(SystemExit) as info:
        main(["--data-root", str(tmp_path), "--device", "cpu", "--no-progress",
              "--output", str(tmp_path / "out")], dataset="BP4D", prog="train_bp4d.py")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("train_bp4d.py: error:") and str(tmp_path) in err
    with pytest.raises(SystemExit):
        main(["--data-root", str(tmp_path / "missing"), "--device", "cpu"], dataset="BP4D")
    assert "does not exist" in capsys.readouterr().err


def test_config_errors():
    from mgrr_pyg.train.config import TrainConfig

    with pytest.raises(ValueError, match="fold: expected 1, 2 or 3"):
        TrainConfig(fold=0)
    with pytest.raises(ValueError, match="unknown keys \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 3})
    assert TrainConfig.from_dict(TrainConfig(epochs=3).to_dict()) == TrainConfig(epochs=3)
