"""The 784-128-10 MLP written with devtensor's Keras-style loop (compile / fit / evaluate)."""
from __future__ import annotations

import devtensor as dt
from devtensor import nn

from _common import mnist, parser, pick_device


def main(argv=None):
    args = parser(__doc__, epochs=5, batch_size=100, lr=1e-3).parse_args(argv)
    device = pick_device(args.device)
    dt.manual_seed(args.seed)
    xtr, ytr, xte, yte = mnist(args.data, args.limit)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)

    model = dt.fit.Model(net)
    model.compile(optimizer=dt.optim.Adam(net.parameters(), lr=args.lr), loss="cross_entropy",
                  metrics=["accuracy"])
    history = model.fit(xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, validation_data=(xte, yte))
    results = model.evaluate(xte, yte, verbose=0)
    print(f"history keys: {sorted(history.history)}")
    print(f"test: {results}")
    return results


if __name__ == "__main__":
    main()
