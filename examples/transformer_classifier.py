"""A small Transformer encoder classifies MNIST digits read as sequences of their 28 rows: each row
(28 pixels) is embedded by nn.Linear(28, 64) plus a learned position embedding, two
nn.TransformerEncoderLayer(64, 4 heads, feed-forward 128, batch_first, norm_first) layers in an
nn.TransformerEncoder with a final LayerNorm, then the mean over the rows and nn.Linear(64, 10).
AdamW with a warm-up; `python examples/transformer_classifier.py` trains 5 epochs on the embedded
5,000-digit sample.

--task majority trains the same encoder on generated data instead: sequences of 16 tokens from a
vocabulary of 8 (an nn.Embedding in place of the row projection), labelled with their most
frequent token (ties to the smaller one): a counting task over the whole sequence."""
from __future__ import annotations

import numpy as np

import devtensor as torch
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import mnist, parser, pick_device, train_and_test


class SequenceClassifier(nn.Module):
    def __init__(self, seq_len, d_in=None, vocab=None, d_model=64, nhead=4, layers=2, dim_ff=128, classes=10,
                 dropout=0.1):
        super().__init__()
        self.embed = nn.Linear(d_in, d_model) if vocab is None else nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_ff, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        h = self.encoder(self.embed(x) + self.pos)
        return self.head(h.mean(1))


def majority_data(n, seq_len=16, vocab=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, size=(n, seq_len))
    counts = np.stack([(x == v).sum(1) for v in range(vocab)], 1)
    return torch.tensor(x), torch.tensor(counts.argmax(1))


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=5, batch_size=64, lr=2e-3)
    p.add_argument("--task", choices=("mnist", "majority"), default="mnist")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    if args.task == "mnist":
        xtr, ytr, xte, yte = mnist(args.data, args.limit)
        xtr, xte = xtr.squeeze(1), xte.squeeze(1)          # (N, 28 rows, 28 pixels)
        model = SequenceClassifier(28, d_in=28)
    else:
        n = args.limit or 4000
        xtr, ytr = majority_data(n, seed=args.seed)
        xte, yte = majority_data(1000, seed=args.seed + 1)
        model = SequenceClassifier(16, vocab=8, classes=8)
    model = model.to(device)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=args.batch_size, shuffle=True)
    print(f"training a {len(model.encoder.layers)}-layer Transformer encoder on {len(xtr)} {args.task} sequences "
          f"for {args.epochs} epochs on {device}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total = args.epochs * len(loader)
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup)))
    return train_and_test(model, loader, optimizer, args.epochs, device, xte, yte, F.cross_entropy, scheduler=scheduler)


if __name__ == "__main__":
    main()
