"""What every example shares: --device/--data/--epochs flags, the MNIST loading, and the classifiers'
training loop and test accuracy. Kept tiny so each example still reads top to bottom like its PyTorch
original."""
from __future__ import annotations

import argparse
import time

from tqdm import tqdm

import devtensor as dt
import devtensor.nn.functional as F


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


def train(model, loader, optimizer, epochs, device, loss_fn=F.cross_entropy, scheduler=None, clip_norm=None,
          on_batch=None, on_epoch=None):
    """PyTorch's usual training loop: per epoch model.train() and a progress bar over loader; per batch
    zero_grad, loss_fn(model(x), y), backward, clip_grad_norm_(clip_norm) when given, optimizer.step()
    and scheduler.step() when given (the examples' schedules count batches). on_batch(output, y, loss)
    runs after every batch (loss as a float), on_epoch(epoch) after every epoch (from 1)."""
    for epoch in range(1, epochs + 1):
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", mininterval=0.5)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            output = model(x)
            loss = loss_fn(output, y)
            loss.backward()
            if clip_norm is not None:
                dt.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_value = loss.item()
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            if on_batch is not None:
                on_batch(output, y, loss_value)
        if on_epoch is not None:
            on_epoch(epoch)


def evaluate(model, x, y, device, batch_size=500):
    """The fraction of the samples x whose predicted class (argmax of the model's output) is y."""
    model.eval()
    correct = 0
    with dt.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size].to(device))
            correct += (out.argmax(1) == y[i:i + batch_size].to(device)).sum().item()
    return correct / len(x)


def train_and_test(model, loader, optimizer, epochs, device, x_test, y_test, loss_fn=F.cross_entropy, **kwargs):
    """train() (kwargs: scheduler, clip_norm, on_batch, on_epoch), then print the time it took and the
    test accuracy, and return that accuracy."""
    start = time.perf_counter()
    train(model, loader, optimizer, epochs, device, loss_fn, **kwargs)
    accuracy = evaluate(model, x_test, y_test, device)
    print(f"trained in {time.perf_counter() - start:.1f} s")
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy
