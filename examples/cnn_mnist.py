"""The classic MNIST CNN (PyTorch's examples/mnist): conv 1->32, conv 32->64, max-pool, dropout,
fc 9216->128, dropout, fc 128->10, log_softmax + NLL, trained with Adam. This is the main job:
`python examples/cnn_mnist.py` trains 5 epochs on the embedded 5,000-digit sample.

Batches of 64, as in PyTorch's example: on 4,000 training digits, 5 epochs of batch 100 are only 200
steps and land at 0.965-0.974 (seeds 0-5, devtensor and PyTorch alike); batch 64 gives 315 steps and
0.967-0.973.

`--logdir runs/cnn` writes TensorBoard scalars (then: `tensorboard --logdir runs`): "step/train_loss"
every --log-interval batches (at the global batch count), and per epoch (at the epoch number, from
1) "epoch/train_loss", "epoch/train_accuracy" and "epoch/test_accuracy"; the test set is then
scored after every epoch instead of once at the end."""
from __future__ import annotations

import time

from tqdm import tqdm

import devtensor as torch
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import mnist, parser, pick_device


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


def evaluate(model, x, y, device, batch_size=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size].to(device))
            correct += (out.argmax(1) == y[i:i + batch_size].to(device)).sum().item()
    return correct / len(x)


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
    writer = None
    if args.logdir:
        from devtensor.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(args.logdir)
    start = time.perf_counter()
    step = 0
    accuracy = None
    for epoch in range(args.epochs):
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=0.5)
        loss_sum, correct = 0.0, 0
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            output = model(x)
            loss = F.nll_loss(output, y)
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = loss.item()
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            if writer is not None:
                loss_sum += loss_value * len(y)
                correct += (output.argmax(1) == y).sum().item()
                if step % args.log_interval == 0:
                    writer.add_scalar("step/train_loss", loss_value, step)
        if writer is not None:
            accuracy = evaluate(model, xte, yte, device)
            writer.add_scalar("epoch/train_loss", loss_sum / len(xtr), epoch + 1)
            writer.add_scalar("epoch/train_accuracy", correct / len(xtr), epoch + 1)
            writer.add_scalar("epoch/test_accuracy", accuracy, epoch + 1)
            writer.flush()
    if accuracy is None:
        accuracy = evaluate(model, xte, yte, device)
    if writer is not None:
        writer.close()
    print(f"trained in {time.perf_counter() - start:.1f} s")
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
