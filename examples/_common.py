"""What every example shares: --device/--data/--epochs flags and the MNIST loading. Kept tiny so
each example still reads top to bottom like its PyTorch original."""
from __future__ import annotations

import argparse

import devtensor as dt


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n} (leave the flag out for no limit)")
    return n


def parser(description, epochs, batch_size, lr):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--data", default=None,
                   help="folder with the four MNIST IDX files (default: the sample embedded in devtensor)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="use only the first N training samples (smoke runs; N >= 1)")
    p.add_argument("--seed", type=int, default=0)
    return p


def pick_device(name):
    if name:
        return dt.device(name)
    return dt.device("cuda" if dt.cuda.is_available() else "cpu")


MEAN, STD = 0.1307, 0.3081  # the MNIST statistics PyTorch's examples normalise with


def mnist(data, limit=None):
    """(x_train, y_train, x_test, y_test) as tensors: images float32 (N, 1, 28, 28), normalised as in
    PyTorch's examples (transforms.Normalize((0.1307,), (0.3081,)))."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of training digits, got {limit}")
    train = dt.datasets.MNIST(root=data, train=True)
    test = dt.datasets.MNIST(root=data, train=False)
    xtr, ytr = train.as_tensors()
    xte, yte = test.as_tensors()
    xtr, xte = (xtr - MEAN) / STD, (xte - MEAN) / STD
    if limit is not None:
        xtr, ytr = xtr[:limit], ytr[:limit]
    return xtr, ytr, xte, yte
