"""Deploy the MNIST CNN with ONNX: train it briefly (or load a checkpoint saved with dt.save), export it
with devtensor.onnx.export, run the file in onnxruntime and compare: both accuracies on the test digits
and the largest difference between the two libraries' outputs.

    python examples/export_onnx.py                       # 1 epoch on the embedded sample, then export
    python examples/export_onnx.py --checkpoint ckpt.safetensors --out mnist_cnn.onnx

A checkpoint is either a state_dict or a dict holding one under "model" (what examples save with
dt.save({"model": model.state_dict(), ...})). Needs `pip install onnx onnxruntime`.
"""
from __future__ import annotations

import time

import numpy as np

import devtensor as torch
import devtensor.nn.functional as F
import devtensor.onnx
from devtensor.utils.data import DataLoader, TensorDataset

from _common import mnist, parser, pick_device
from cnn_mnist import Net


def train(model, xtr, ytr, args, device):
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    model.train()
    for epoch in range(args.epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}")


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=1, batch_size=64, lr=1e-3)
    p.add_argument("--checkpoint", default=None, help="load this dt.save checkpoint instead of training")
    p.add_argument("--out", default="mnist_cnn.onnx", help="where to write the ONNX model")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)
    import onnxruntime as ort

    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = mnist(args.data, args.limit)
    model = Net().to(device)
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location=device)
        model.load_state_dict(state.get("model", state))
        print(f"loaded {args.checkpoint}")
    else:
        print(f"training the MNIST CNN on {len(xtr)} digits for {args.epochs} epoch(s) on {device}")
        train(model, xtr, ytr, args, device)

    start = time.perf_counter()
    devtensor.onnx.export(model, (xte[:2].to(device),), args.out, input_names=["image"], output_names=["log_probs"],
                          dynamic_axes={"image": {0: "batch"}, "log_probs": {0: "batch"}}, opset_version=args.opset)
    print(f"exported {args.out} (opset {args.opset}) in {time.perf_counter() - start:.2f} s")

    model.eval()
    with torch.no_grad():
        ours = torch.cat([model(xte[i:i + 500].to(device)).cpu() for i in range(0, len(xte), 500)]).numpy()
    session = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"image": xte.numpy()})[0]  # all test digits in one batch: the batch dim is symbolic
    labels = yte.numpy()
    acc_dt = float((ours.argmax(1) == labels).mean())
    acc_ort = float((theirs.argmax(1) == labels).mean())
    diff = float(np.abs(ours - theirs).max())
    print(f"devtensor test accuracy:   {acc_dt:.4f}")
    print(f"onnxruntime test accuracy: {acc_ort:.4f}")
    print(f"max |devtensor - onnxruntime| over {len(labels)} digits x 10 log-probabilities: {diff:.2e}")
    return {"devtensor": acc_dt, "onnxruntime": acc_ort, "max_diff": diff}


if __name__ == "__main__":
    main()
