"""An LSTM reads each MNIST digit row by row (28 steps of 28 pixels) and classifies it from its last
hidden state: nn.LSTM(28, 128, num_layers=2, batch_first=True) + nn.Linear(128, 10), cross-entropy,
Adam. The classic "RNN on MNIST" exercise; `python examples/rnn_mnist.py` trains 5 epochs on the
embedded 5,000-digit sample.

--cell gru / rnn swaps in nn.GRU or the tanh nn.RNN (same sizes); --bidirectional reads the rows
both ways and classifies from both final states."""
from __future__ import annotations

import devtensor as torch
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import mnist, parser, pick_device, train_and_test


class RowReader(nn.Module):
    def __init__(self, cell="lstm", hidden=128, layers=2, bidirectional=False):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = rnn(28, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), 10)

    def forward(self, x):                 # x: (N, 1, 28, 28)
        out, h = self.rnn(x.squeeze(1))   # rows as the sequence: (N, 28 steps, 28 features)
        h = h[0] if isinstance(h, tuple) else h
        d = 2 if self.rnn.bidirectional else 1
        last = torch.cat([h[-d + i] for i in range(d)], 1)  # the last layer's final state(s)
        return self.fc(last)


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=5, batch_size=64, lr=2e-3)
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--bidirectional", action="store_true")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = mnist(args.data, args.limit)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=args.batch_size, shuffle=True)
    model = RowReader(args.cell, args.hidden, args.layers, args.bidirectional).to(device)
    print(f"training a {args.layers}-layer {args.cell.upper()} row reader on {len(xtr)} digits for {args.epochs} "
          f"epochs on {device}")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    return train_and_test(model, loader, optimizer, args.epochs, device, xte, yte, F.cross_entropy, clip_norm=1.0)


if __name__ == "__main__":
    main()
