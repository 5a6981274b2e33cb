"""TensorFlow's "MNIST for ML beginners", define-then-run: softmax regression y = softmax(x W + b)
trained with SGD (lr 0.5) for 1000 steps of batch 100. `dt.compile` plays tf.function / the
session: the training step is captured as one graph on its first call and every later step
replays it. Run with --eager to execute the same program op by op (the dynamic graph): both
print the same accuracy, bit for bit."""
from __future__ import annotations

import time

import devtensor as torch
import devtensor.nn.functional as F

from _common import mnist, parser, pick_device


def main(argv=None):
    p = parser(__doc__, epochs=0, batch_size=100, lr=0.5)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eager", action="store_true", help="run op by op instead of replaying the captured graph")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = mnist(args.data, args.limit)
    x_train, x_test = x_train.reshape(-1, 784).to(device), x_test.reshape(-1, 784).to(device)
    y_train, y_test = y_train.to(device), y_test.to(device)

    # the model's variables, as tf.Variable(tf.zeros(...))
    W = torch.zeros(784, 10, device=device, requires_grad=True)
    b = torch.zeros(10, device=device, requires_grad=True)
    optimizer = torch.optim.SGD([W, b], lr=args.lr)

    def train_step(x, y):  # the graph: forward, loss, gradients and the update
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ W + b, y)
        loss.backward()
        optimizer.step()
        return loss

    step = train_step if args.eager else torch.compile(train_step, fullgraph=True)
    n = x_train.shape[0]
    start = time.perf_counter()
    for i in range(args.steps):  # mnist.train.next_batch(100): a random batch each step
        idx = torch.randint(0, n, (args.batch_size,), device=device)
        loss = step(x_train[idx], y_train[idx])
    seconds = time.perf_counter() - start
    with torch.no_grad():
        accuracy = ((x_test @ W + b).argmax(1) == y_test).float().mean().item()
    print(f"{'eager' if args.eager else 'compiled'}: {args.steps} steps in {seconds:.2f} s, "
          f"last loss {loss.item():.4f}, test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
