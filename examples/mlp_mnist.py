"""An MLP on MNIST with Adam: 784-128-10 by default, 784-10-10 with --hidden 10."""
from __future__ import annotations

import devtensor as torch
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import mnist, parser, pick_device


def main(argv=None):
    p = parser(__doc__, epochs=5, batch_size=100, lr=1e-3)
    p.add_argument("--hidden", type=int, default=128)
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = mnist(args.data, args.limit)
    loader = DataLoader(TensorDataset(xtr.reshape(len(xtr), -1), ytr), batch_size=args.batch_size, shuffle=True)

    model = nn.Sequential(nn.Linear(784, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(xte.reshape(len(xte), -1).to(device)).argmax(1)
            accuracy = (pred == yte.to(device)).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
