"""Linear regression y = 3x + 2 with SGD: the first program of every tutorial."""
from __future__ import annotations

import devtensor as torch  # the only change from the PyTorch original
from devtensor import nn

from _common import parser, pick_device


def main(argv=None):
    args = parser(__doc__, epochs=200, batch_size=0, lr=0.1).parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    x = torch.linspace(-1, 1, 100, device=device).unsqueeze(1)
    y = 3 * x + 2 + 0.01 * torch.randn(100, 1, device=device)

    model = nn.Linear(1, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    for epoch in range(args.epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    w, b = model.weight.item(), model.bias.item()
    print(f"w = {w:.3f}, b = {b:.3f} (target 3, 2), loss {loss.item():.5f}")
    return w, b


if __name__ == "__main__":
    main()
