"""The classic MNIST CNN (PyTorch's examples/mnist): conv 1->32, conv 32->64, max-pool, dropout,
fc 9216->128, dropout, fc 128->10, log_softmax + NLL, trained with Adam. This is the main job:
`python examples/cnn_mnist.py` trains 5 epochs on the embedded 5,000-digit sample.

Batches of 64, as in PyTorch's example: on 4,000 training digits, 5 epochs of batch 100 are only 200
steps and land at 0.965-0.974 (seeds 0-5, devtensor and PyTorch alike); batch 64 gives 315 steps and
0.967-0.973.

`--logdir runs/cnn` writes TensorBoard scalars (then: `tensorboard --logdir runs`): "step/train_loss"
every --log-interval batches (at the global batch count), and per epoch (at the epoch number, from
1) "epoch/train_loss", "epoch/train_accuracy" and "epoch/test_accuracy"; the test set is then
scored after every epoch as well as at the end."""
from __future__ import annotations

import devtensor as torch
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import evaluate, mnist, parser, pick_device, train_and_test


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=5, batch_size=64, lr=1e-3)
    p.add_argument("--logdir", default=None, help="write TensorBoard event files to this folder")
    p.add_argument("--log-interval", type=int, default=10,
                   help="batches between the per-step loss scalars of --logdir (PyTorch's example: 10)")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = mnist(args.data, args.limit)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=args.batch_size, shuffle=True)
    print(f"training the MNIST CNN on {len(xtr)} digits for {args.epochs} epochs on {device}")

    model = Net().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    logs, writer = {}, None
    if args.logdir:
        from devtensor.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(args.logdir)
        totals = {"step": 0, "loss": 0.0, "correct": 0}

        def log_batch(output, y, loss):
            totals["step"] += 1
            totals["loss"] += loss * len(y)
            totals["correct"] += (output.argmax(1) == y).sum().item()
            if totals["step"] % args.log_interval == 0:
                writer.add_scalar("step/train_loss", loss, totals["step"])

        def log_epoch(epoch):
            writer.add_scalar("epoch/train_loss", totals["loss"] / len(xtr), epoch)
            writer.add_scalar("epoch/train_accuracy", totals["correct"] / len(xtr), epoch)
            writer.add_scalar("epoch/test_accuracy", evaluate(model, xte, yte, device), epoch)
            writer.flush()
            totals["loss"], totals["correct"] = 0.0, 0

        logs = dict(on_batch=log_batch, on_epoch=log_epoch)
    accuracy = train_and_test(model, loader, optimizer, args.epochs, device, xte, yte, F.nll_loss, **logs)
    if writer is not None:
        writer.close()
    return accuracy


if __name__ == "__main__":
    main()
