"""Linear regression y = 3x + 2 with SGD: the first program of every tutorial."""
from __future__ import annotations

import devtensor as torch  # the only change from the PyTorch original
from devtensor import nn

from _common import parser, pick_device


def main(argv=None):
    p = parser(__doc__, epochs=200, batch_size=None, lr=0.1)
    args = p.parse_args(argv)
    if args.data is not None:  # every flag is honoured or refused, never silently ignored
        p.error("--data: this program generates its data (y = 3x + 2 plus noise); it reads no data folder")
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    n = args.limit if args.limit is not None else 100  # --limit N: N points instead of 100
    x = torch.linspace(-1, 1, n, device=device).unsqueeze(1)
    y = 3 * x + 2 + 0.01 * torch.randn(n, 1, device=device)
    batch = n if args.batch_size is None else args.batch_size  # default: the whole data set per step
    if batch < 1:
        p.error(f"--batch-size must be positive, got {batch}")

    model = nn.Linear(1, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    for epoch in range(args.epochs):
        order = torch.randperm(n, device=device) if batch < n else None
        for start in range(0, n, batch):
            xb, yb = (x, y) if order is None else (x[order[start:start + batch]], y[order[start:start + batch]])
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
    w, b = model.weight.item(), model.bias.item()
    print(f"w = {w:.3f}, b = {b:.3f} (target 3, 2), loss {loss.item():.5f}")
    return w, b


if __name__ == "__main__":
    main()
