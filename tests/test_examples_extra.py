"""The layer examples of issue 19 run (briefly) and learn: each is imported and its main() called with
small settings on the cpu. The thresholds sit well above chance and below what the seeds reached."""
from __future__ import annotations

import math
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))


def _run(name, argv):
    mod = __import__(name)
    return mod.main(["--device", "cpu", *argv])


def test_rnn_mnist_lstm_learns():
    # 20 Adam steps of the 2-layer LSTM row reader on 1280 digits: 0.46 test accuracy (chance 0.1)
    assert _run("rnn_mnist", ["--epochs", "1", "--limit", "1280"]) > 0.25


def test_rnn_mnist_bidirectional_gru_runs():
    assert _run("rnn_mnist", ["--epochs", "1", "--limit", "320", "--cell", "gru", "--layers", "1",
                              "--bidirectional"]) > 0.1


def test_resnet_small_learns():
    # 30 SGD steps (the cosine schedule over them), BatchNorm statistics from 30 batches: 0.25
    assert _run("resnet_small", ["--epochs", "1", "--limit", "1920"]) > 0.15


def test_transformer_classifier_learns_mnist_rows():
    # 20 AdamW steps of the 2-layer encoder on 1280 digits: 0.39
    assert _run("transformer_classifier", ["--epochs", "1", "--limit", "1280"]) > 0.25


def test_transformer_classifier_learns_the_majority_task():
    # generated sequences, 8 classes (chance 1/8 plus the tie rule's skew): 0.90 after 64 steps
    assert _run("transformer_classifier", ["--task", "majority", "--epochs", "2", "--limit", "2000"]) > 0.6


def test_dcgan_mnist_runs_a_few_steps():
    stats = _run("dcgan_mnist", ["--epochs", "1", "--limit", "320"])  # 5 steps of D and G
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["D(x)"] > stats["D(G(z))"]


def test_vae_mnist_learns():
    # an untrained VAE scores ~543 per digit (BCE of 784 pixels + KL); 16 Adam steps reach 244
    assert _run("vae_mnist", ["--epochs", "2", "--limit", "1000"]) < 300
