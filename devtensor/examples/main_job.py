"""The main job: placeholder until the training stack lands (a tiny autograd demo)."""
from __future__ import annotations

import devtensor as dt


def main():
    dt.manual_seed(0)
    w = dt.zeros(1, requires_grad=True)
    b = dt.zeros(1, requires_grad=True)
    x = dt.linspace(-1, 1, 64).reshape(-1, 1)
    y = 3 * x + 2
    for _ in range(200):
        loss = ((x * w + b - y) ** 2).mean()
        loss.backward()
        with dt.no_grad():
            w -= 0.1 * w.grad
            b -= 0.1 * b.grad
        w.grad = None
        b.grad = None
    print(f"learned w={w.item():.3f} b={b.item():.3f} (target 3, 2); loss {loss.item():.2e}")


if __name__ == "__main__":
    main()
