"""A small ResNet for MNIST: a 3x3 stem, three stages of BasicBlocks (16, 32, 64 channels; conv-BN-
ReLU-conv-BN plus the identity or a strided 1x1 shortcut, as torchvision's resnet.py), then
nn.AdaptiveAvgPool2d(1) and a linear head. SGD with momentum and weight decay under a cosine
learning-rate schedule, the usual ResNet recipe; `python examples/resnet_small.py` trains 3 epochs
on the embedded 5,000-digit sample (--blocks 2 for two blocks per stage)."""
from __future__ import annotations

import devtensor as torch
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.utils.data import DataLoader, TensorDataset

from _common import mnist, parser, pick_device, train_and_test


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, blocks=(1, 1, 1), widths=(16, 32, 64), num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, inplanes = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stage = []
            for j in range(n):
                stage.append(BasicBlock(inplanes, w, stride=2 if (i > 0 and j == 0) else 1))
                inplanes = w
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))           # 28x28
        x = self.layer3(self.layer2(self.layer1(x)))  # 28x28 -> 14x14 -> 7x7
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=3, batch_size=64, lr=0.05)
    p.add_argument("--blocks", type=int, default=1, help="BasicBlocks per stage")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = mnist(args.data, args.limit)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=args.batch_size, shuffle=True)
    model = ResNet(blocks=(args.blocks,) * 3).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training a ResNet ({args.blocks} BasicBlock(s) per stage, {n_params:,} parameters) on {len(xtr)} digits "
          f"for {args.epochs} epochs on {device}")
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))
    return train_and_test(model, loader, optimizer, args.epochs, device, xte, yte, F.cross_entropy, scheduler=scheduler)


if __name__ == "__main__":
    main()
