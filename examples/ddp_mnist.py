"""The MNIST CNN of examples/cnn_mnist.py, trained data-parallel on N ranks with DistributedDataParallel.

    devtensor launch -n 2 examples/ddp_mnist.py          # = mpiexec -n 2 python -m mpi4py examples/ddp_mnist.py

Every rank builds the same Net (DDP broadcasts rank 0's weights), trains on its DistributedSampler
share of the digits, and DDP averages the gradients over the ranks during backward, so every rank
takes the same Adam steps. --batch-size is the global batch (default 64, as cnn_mnist.py): each
rank runs batch_size / N of it, so the recipe (steps, learning rate) is the single-process one and
the accuracy lands in the same range. Only rank 0 prints and (with --save) writes the weights, with
the bare model's keys (loadable by cnn_mnist.Net). On a GPU machine each rank uses cuda:{local rank}
and NCCL; on cpu, MPI."""
from __future__ import annotations

import time

from tqdm import tqdm

import devtensor as torch
import devtensor.distributed as dist
import devtensor.nn.functional as F
from devtensor.nn.parallel import DistributedDataParallel as DDP
from devtensor.utils.data import DataLoader, TensorDataset
from devtensor.utils.data.distributed import DistributedSampler

from _common import evaluate, mnist, parser, pick_device
from cnn_mnist import Net


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=5, batch_size=64, lr=1e-3)
    p.add_argument("--save", default=None, help="rank 0 writes the trained weights here (dt.save)")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    dist.init_process_group("nccl" if device.type == "cuda" else "mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.type == "cuda":
        device = torch.device("cuda", dist.get_local_rank())  # one GPU per rank
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the {world} ranks")
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = mnist(args.data, args.limit)
    data = TensorDataset(xtr, ytr)
    sampler = DistributedSampler(data, shuffle=True, seed=args.seed)
    loader = DataLoader(data, batch_size=args.batch_size // world, sampler=sampler)
    if rank == 0:
        print(f"training the MNIST CNN on {len(xtr)} digits for {args.epochs} epochs on {world} ranks "
              f"({device}, batch {args.batch_size // world} per rank)")

    model = DDP(Net().to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=0.5, disable=rank != 0)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()  # gradients averaged over the ranks when this returns
            optimizer.step()
            if rank == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    accuracy = None
    if rank == 0:  # every rank holds the same weights: one of them scores them
        accuracy = evaluate(model.module, xte, yte, device)
        print(f"trained in {time.perf_counter() - start:.1f} s")
        print(f"test accuracy: {accuracy:.4f}")
        if args.save:
            torch.save(model.module.state_dict(), args.save)
    dist.destroy_process_group()
    return accuracy


if __name__ == "__main__":
    main()
