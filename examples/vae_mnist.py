"""The variational autoencoder of PyTorch's examples/vae (Kingma & Welling): encoder 784-400-(20 means,
20 log-variances), a reparameterised sample, decoder 20-400-784 with a sigmoid; loss = binary
cross-entropy of the reconstruction (summed) + the KL divergence from N(0, I); Adam lr 1e-3, batch
128. `python examples/vae_mnist.py` trains 10 epochs on the embedded 5,000-digit sample and prints
the test loss per digit; --out FILE.png saves 64 digits decoded from random codes (needs matplotlib)."""
from __future__ import annotations

import time

from tqdm import tqdm

import devtensor as torch
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import MEAN, STD, mnist, parser, pick_device


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=10, batch_size=128, lr=1e-3)
    p.add_argument("--out", default=None, help="save 64 digits decoded from random codes to this PNG file")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    xtr, _, xte, _ = mnist(args.data, args.limit)
    xtr, xte = (xtr * STD + MEAN).clamp(0, 1), (xte * STD + MEAN).clamp(0, 1)  # the raw [0, 1] pixels
    loader = DataLoader(TensorDataset(xtr), batch_size=args.batch_size, shuffle=True)
    model = VAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(f"training the VAE on {len(xtr)} digits for {args.epochs} epochs on {device}")
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=0.5)
        for (x,) in bar:
            x = x.to(device)
            optimizer.zero_grad()
            recon, mu, logvar = model(x)
            loss = loss_function(recon, x, mu, logvar)
            loss.backward()
            optimizer.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item() / len(x):.1f}", refresh=False)
        print(f"epoch {epoch + 1}: average train loss {total / len(xtr):.2f}")
    model.eval()
    test_loss = 0.0
    with torch.no_grad():
        for i in range(0, len(xte), 500):
            x = xte[i:i + 500].to(device)
            recon, mu, logvar = model(x)
            test_loss += loss_function(recon, x, mu, logvar).item()
    test_loss /= len(xte)
    print(f"trained in {time.perf_counter() - start:.1f} s")
    print(f"test loss per digit: {test_loss:.2f}")
    if args.out:
        from dcgan_mnist import save_grid

        with torch.no_grad():
            sample = model.decode(torch.randn(64, 20, device=device)).view(64, 1, 28, 28)
        save_grid(sample * 2 - 1, args.out)
        print(f"saved 64 samples to {args.out}")
    return test_loss


if __name__ == "__main__":
    main()
