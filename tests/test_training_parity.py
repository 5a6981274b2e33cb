"""The classic models train like PyTorch's: from the same weights, on the same batches, devtensor's
losses and weights follow PyTorch CPU's step by step (dropout off, so both compute one function).
The models come from bench/bench_training.py, which builds each for either library.  The Adam CNN
runs once more in a fresh process with an empty numba cache, as in a fresh clone or CI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt

torch = pytest.importorskip("torch", reason="PyTorch CPU is the reference here")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_training import cnn, copy_weights, mlp  # noqa: E402


def _train_both(build, loss, x, y, steps, batch, opt):
    torch.manual_seed(0)
    tm = build(torch)
    dm = build(dt)
    copy_weights(tm, dm)
    start = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    tm.eval()  # dropout off in both: the same deterministic function
    dm.eval()
    lr = 1e-3 if opt == "Adam" else 0.05
    to = getattr(torch.optim, opt)(tm.parameters(), lr=lr)
    do = getattr(dt.optim, opt)(dm.parameters(), lr=lr)
    losses = []
    for i in range(steps):
        xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
        to.zero_grad()
        lt = getattr(torch.nn.functional, loss)(tm(torch.from_numpy(xb)), torch.from_numpy(yb))
        lt.backward()
        to.step()
        do.zero_grad()
        ld = getattr(dt.nn.functional, loss)(dm(dt.tensor(xb)), dt.tensor(yb))
        ld.backward()
        do.step()
        losses.append((lt.item(), ld.item()))
    for k, v in tm.state_dict().items():  # the weights moved: matching them below is not vacuous
        assert np.abs(v.detach().numpy() - start[k]).max() > 5e-4, k
    return tm, dm, np.array(losses)


def _sample(n):
    x, y = dt.datasets.MNIST(root=None, train=True).as_tensors()
    return ((x[:n] - 0.1307) / 0.3081).numpy(), y[:n].numpy().astype(np.int64)


@pytest.mark.parametrize("opt", ["Adam", "SGD"])
def test_cnn_follows_pytorch(opt):
    x, y = _sample(5 * 20)
    tm, dm, losses = _train_both(cnn, "nll_loss", x, y, steps=5, batch=20, opt=opt)
    np.testing.assert_allclose(losses[:, 1], losses[:, 0], rtol=2e-4)
    for (k, tv), dv in zip(tm.state_dict().items(), dm.state_dict().values()):
        np.testing.assert_allclose(dv.numpy(), tv.detach().numpy(), rtol=1e-3, atol=1e-4, err_msg=k)


def test_cnn_follows_pytorch_with_a_cold_numba_cache(tmp_path):
    """test_cnn_follows_pytorch[Adam] in a subprocess whose kernels all compile afresh: freshly
    compiled kernels must compute what the cached ones do (with fastmath they did not, and this
    case drifted past its tolerance on a fresh clone only)."""
    here = Path(__file__).resolve().parent
    code = ("import sys; sys.path[:0] = sys.argv[1:]; import test_training_parity as t; "
            "t.test_cnn_follows_pytorch('Adam')")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    out = subprocess.run([sys.executable, "-c", code, str(here), str(here.parent)], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "the subprocess did not use the fresh cache"


@pytest.mark.parametrize("hidden", [10, 128])
def test_mlp_follows_pytorch(hidden):
    x, y = _sample(10 * 64)
    tm, dm, losses = _train_both(lambda lib: mlp(lib, hidden), "cross_entropy", x, y, steps=10, batch=64,
                                 opt="Adam")
    np.testing.assert_allclose(losses[:, 1], losses[:, 0], rtol=1e-4)
    for (k, tv), dv in zip(tm.state_dict().items(), dm.state_dict().values()):
        np.testing.assert_allclose(dv.numpy(), tv.detach().numpy(), rtol=1e-3, atol=1e-5, err_msg=k)
