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


def option_help(text):
    """The help of each option in ``--help`` text, by its first flag, joined to one line."""
    blocks, current = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            blocks[current] = [line.strip()]
        elif current is not None and line.startswith("   "):
            blocks[current].append(line.strip())
        else:
            current = None
    return {flag: " ".join(lines) for flag, lines in blocks.items()}


def test_help_shows_each_default_once_and_every_option_has_help():
    parser = build_parser("BP4D")
    for action in parser._actions:
        assert isinstance(action.help, str) and len(action.help) > 8, action.option_strings
    blocks = option_help(parser.format_help())
    assert len(blocks) == len(parser._actions)
    for flag, text in blocks.items():
        assert text.count("(default:") <= 1, text
        assert "(default: None)" not in text and "(default: [])" not in text, text
    # without --data-root: the quick schedule's values, said once
    assert blocks["--epochs"].endswith("training epochs (default: 8, quick schedule)")
    assert blocks["--lr"].endswith("(default: 0.001, quick schedule)")
    assert blocks["--preset"].endswith("(default: tiny, quick schedule)")
    assert blocks["--max-test-frames"].endswith("(default: 600, quick schedule)")
    assert blocks["--device"].endswith("(default: auto)")
    assert blocks["--momentum"].endswith("(default: 0.9)")
    assert blocks["--workers"].endswith("(default: min(2, cpus))")
    assert "(default:" not in blocks["--compile"] and "(default:" not in blocks["--no-progress"]
    assert "sgd: the paper's" in blocks["--optimizer"] and "step: the paper's" in blocks["--lr-scheduler"]


@pytest.mark.parametrize("argv", [["--data-root", "/data/BP4D"], ["--schedule", "paper"],
                                  ["--schedule=paper"]])
def test_help_of_a_paper_command_line_shows_the_paper_defaults(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--help"], dataset="BP4D", prog="train_bp4d.py")
    assert info.value.code == 0
    blocks = option_help(capsys.readouterr().out)
    assert blocks["--epochs"].endswith("(default: 15, paper schedule)")
    assert blocks["--lr"].endswith("(default: 0.01, paper schedule)")
    assert blocks["--preset"].endswith("(default: mgrr_bp4d, paper schedule)")
    assert blocks["--max-test-frames"].endswith("(default: every frame, paper schedule)")
    assert blocks["--schedule"].endswith("(default: paper; without --data-root quick, with it paper)")


def test_fold_and_ablation_commands_help(capsys):
    from mgrr_pyg.train.cli import ablation_main, folds_main

    for command in (folds_main, ablation_main):
        with pytest.raises(SystemExit):
            command(["--help"])
        blocks = option_help(capsys.readouterr().out)
        for flag, text in blocks.items():
            assert text.count("(default:") <= 1 and "(default: None)" not in text, text
    assert blocks["--seeds"].endswith("(default: 0 1 2)")
    assert blocks["--fold"].endswith("(default: 1)")


def test_every_config_field_is_an_option_and_has_its_default():
    from dataclasses import fields

    from mgrr_pyg.train.config import TrainConfig

    dests = {action.dest for action in build_parser()._actions}  # --dataset too: not fixed
    assert {f.name for f in fields(TrainConfig)} <= dests
    quick, default = parse([]), TrainConfig()
    for f in fields(TrainConfig):
        if f.name not in SCHEDULES["quick"]:
            assert getattr(quick, f.name) == getattr(default, f.name), f.name


def test_options_made_from_fields_reach_the_config():
    cfg = parse(["--no-nesterov", "--eval-batch-size", "16", "--log-every", "0", "--no-drop-last",
                 "--lr-scheduler", "step", "--selection-metric", "auc", "--lr-step", "3",
                 "--lr-gamma", "0.1", "--momentum", "0.8", "--weight-decay", "0",
                 "--checkpoint-every", "5", "--checkpoint-minutes", "0", "--no-progress",
                 "--no-tensorboard", "--overwrite", "--channels-last", "--data-root", "d",
                 "--image-root", "imgs", "--prepared-root", "p", "--cache-dir", "c",
                 "--synthetic-seed", "3", "--max-train-frames", "10", "--max-test-frames", "5",
                 "--lambda-align", "0.25", "--threshold", "0.4"])
    assert (cfg.nesterov, cfg.eval_batch_size, cfg.log_every, cfg.drop_last) == (False, 16, 0, False)
    assert (cfg.lr_scheduler, cfg.selection_metric, cfg.lr_step, cfg.lr_gamma) == ("step", "auc", 3, 0.1)
    assert (cfg.momentum, cfg.weight_decay, cfg.checkpoint_every, cfg.checkpoint_minutes) == \
        (0.8, 0.0, 5, 0.0)
    assert not cfg.progress and not cfg.tensorboard and cfg.overwrite and cfg.channels_last
    assert (cfg.data_root, cfg.image_root, cfg.prepared_root, cfg.cache_dir) == ("d", "imgs", "p", "c")
    assert (cfg.synthetic_seed, cfg.max_train_frames, cfg.max_test_frames) == (3, 10, 5)
    assert (cfg.lambda_align, cfg.threshold) == (0.25, 0.4)
    assert parse(["--dataset", "DISFA", "--data-root", "x"], dataset=None).preset == "mgrr_disfa"
    with pytest.raises(SystemExit):
        build_parser("BP4D").parse_args(["--selection-metric", "loss"])


def test_the_config_docstring_documents_every_field():
    from dataclasses import fields

    from mgrr_pyg.train.config import TrainConfig, field_help

    doc = " ".join(TrainConfig.__doc__.split())
    for f in fields(TrainConfig):
        assert len(field_help(f)) > 8, f.name
        assert f" {f.name} ({f.type}): {' '.join(field_help(f).split())}. (default: " in doc, f.name


def test_the_mgrr_train_console_script_exits_zero_after_a_successful_run(monkeypatch):
    """A console script hands its function's return value to ``sys.exit``: the function
    ``setup.cfg`` names for ``mgrr-train`` must return 0, not the run's results (which
    ``sys.exit`` prints to stderr as an error, with status 1)."""
    import configparser
    import importlib
    from pathlib import Path

    import mgrr_pyg.train.cli as cli

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    scripts = dict(line.split(" = ") for line in
                   setup["options.entry_points"]["console_scripts"].strip().splitlines())
    module, function = scripts["mgrr-train"].split(":")
    monkeypatch.setattr(cli, "main", lambda argv=None, **kwargs: object())  # a run's results
    entry = getattr(importlib.import_module(module), function)  # after the patch: never trains
    assert entry([]) == 0
