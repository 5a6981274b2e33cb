"""Logistic regression with binary cross-entropy on two Gaussian blobs."""
from __future__ import annotations

import devtensor as torch
from devtensor import nn

from _common import parser, pick_device


def main(argv=None):
    args = parser(__doc__, epochs=300, batch_size=0, lr=0.5).parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    n = 200
    x = torch.cat([torch.randn(n, 2) + 2, torch.randn(n, 2) - 2]).to(device)
    y = torch.cat([torch.ones(n, 1), torch.zeros(n, 1)]).to(device)

    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid()).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.BCELoss()
    for epoch in range(args.epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = ((model(x) > 0.5).float() == y).float().mean().item()
    print(f"loss {loss.item():.4f}, accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
