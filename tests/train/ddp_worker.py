"""Process entry point of the DDP test (importable by spawned processes)."""
import gc
import os

import torch


def run(rank, world, port, out_path, epochs, n_train, n_eval, batch_size):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.distributed import init_distributed, shutdown
    from mgrr_pyg.train.trainer import Trainer

    from .toys import ToyDataset, ToyModel, toy_loss

    ctx = init_distributed("cpu")
    assert ctx.distributed and ctx.rank == rank
    torch.manual_seed(0)
    model = ToyModel(dropout=0.0)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.1, workers=0, progress=False,
                      tensorboard=False, device="cpu")
    trainer = Trainer(model, toy_loss, ToyDataset(n=n_train), cfg, aus=(1, 2, 4), dist_ctx=ctx)
    trainer.fit()
    trainer.close()  # the DDP wrapper goes before the process group (distributed.shutdown)
    wrappers = sum(isinstance(o, torch.nn.parallel.DistributedDataParallel) for o in gc.get_objects())
    eval_set = ToyDataset(n=n_eval, train=False)
    arrays = trainer.predict(eval_set)  # the plain module, after close
    if rank == 0:
        torch.save({"params": {k: v.detach().clone() for k, v in trainer.model.named_parameters()},
                    "state": trainer.model.state_dict(), "probs": torch.from_numpy(arrays["probs"]),
                    "labels": torch.from_numpy(arrays["labels"]), "steps": trainer.global_step,
                    "batches_per_epoch": trainer.sampler.batches_per_epoch,
                    "ddp_wrappers_after_close": wrappers}, out_path)
    shutdown(ctx)
