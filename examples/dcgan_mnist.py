"""DCGAN on MNIST (Radford et al.; PyTorch's examples/dcgan, sized for 28x28 digits): the generator
turns a 64-d noise vector into a digit with nn.ConvTranspose2d (1x1 -> 7x7 -> 14x14 -> 28x28, batch
norm and ReLU between, Tanh out), the discriminator is the mirror image with strided nn.Conv2d and
LeakyReLU; binary cross-entropy on logits, Adam(lr 2e-4, betas (0.5, 0.999)) for both, as in the
paper. `python examples/dcgan_mnist.py` trains 2 epochs on the embedded 5,000-digit sample and prints
the losses and D's mean outputs on real and generated digits; --out FILE.png saves a grid of 64
samples (needs matplotlib)."""
from __future__ import annotations

import time

from tqdm import tqdm

import devtensor as torch
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import mnist, parser, pick_device

NZ = 64


class Generator(nn.Module):
    def __init__(self, nz=NZ, ngf=32):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),     # 7x7
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # 14x14
            nn.ConvTranspose2d(ngf * 2, 1, 4, 2, 1, bias=False), nn.Tanh())                                   # 28x28

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, ndf=32):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),                             # 14x14
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),                                                                 # 7x7
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False))                                                          # 1x1

    def forward(self, x):
        return self.main(x).reshape(-1)


def weights_init(m):
    """The DCGAN paper's init, as PyTorch's example applies it."""
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def save_grid(images, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imgs = images.detach().cpu().numpy()[:, 0]
    n = int(len(imgs) ** 0.5)
    fig, axes = plt.subplots(n, n, figsize=(n, n))
    for ax, im in zip(axes.ravel(), imgs):
        ax.imshow(im, cmap="gray", vmin=-1, vmax=1)
        ax.axis("off")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=2, batch_size=64, lr=2e-4)
    p.add_argument("--out", default=None, help="save a grid of 64 generated digits to this PNG file")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    xtr, _, _, _ = mnist(args.data, args.limit)
    xtr = ((xtr * 0.3081 + 0.1307) * 2 - 1).clamp(-1, 1)  # pixels back to [0, 1], then to Tanh's [-1, 1]
    loader = DataLoader(TensorDataset(xtr), batch_size=args.batch_size, shuffle=True, drop_last=True)
    netG, netD = Generator().to(device), Discriminator().to(device)
    netG.apply(weights_init)
    netD.apply(weights_init)
    optD = torch.optim.Adam(netD.parameters(), lr=args.lr, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=args.lr, betas=(0.5, 0.999))
    fixed = torch.randn(64, NZ, 1, 1, device=device)
    print(f"training a DCGAN on {len(xtr)} digits for {args.epochs} epochs on {device}")
    start = time.perf_counter()
    stats = {}
    for epoch in range(args.epochs):
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=0.5)
        sums = {"loss_D": 0.0, "loss_G": 0.0, "D(x)": 0.0, "D(G(z))": 0.0}
        n = 0
        for (real,) in bar:
            real = real.to(device)
            b = real.shape[0]
            ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
            # (1) D: maximise log D(x) + log(1 - D(G(z)))
            optD.zero_grad()
            out_real = netD(real)
            fake = netG(torch.randn(b, NZ, 1, 1, device=device))
            out_fake = netD(fake.detach())
            loss_D = F.binary_cross_entropy_with_logits(out_real, ones) + \
                F.binary_cross_entropy_with_logits(out_fake, zeros)
            loss_D.backward()
            optD.step()
            # (2) G: maximise log D(G(z))
            optG.zero_grad()
            out = netD(fake)
            loss_G = F.binary_cross_entropy_with_logits(out, ones)
            loss_G.backward()
            optG.step()
            n += 1
            sums["loss_D"] += loss_D.item()
            sums["loss_G"] += loss_G.item()
            sums["D(x)"] += out_real.sigmoid().mean().item()
            sums["D(G(z))"] += out.sigmoid().mean().item()
            bar.set_postfix(loss_D=f"{loss_D.item():.3f}", loss_G=f"{loss_G.item():.3f}", refresh=False)
        stats = {k: v / max(n, 1) for k, v in sums.items()}
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()))
    print(f"trained in {time.perf_counter() - start:.1f} s")
    if args.out:
        netG.eval()
        with torch.no_grad():
            save_grid(netG(fixed), args.out)
        print(f"saved 64 samples to {args.out}")
    return stats


if __name__ == "__main__":
    main()
