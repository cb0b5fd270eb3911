"""The seeds' from-scratch CNNs, written to timm's interface (``forward_features``,
``forward_head``, ``get_classifier``, ``reset_classifier``) so freezing, CAM and export treat
them like any backbone."""
from __future__ import annotations

import torch
from torch import nn


class _SeedCNN(nn.Module):
    def __init__(self, features: nn.Sequential, feat_dim_fn, head_layers, num_classes: int, drop_rate: float):
        super().__init__()
        self.features = features
        self.num_features = None
        self._feat_dim_fn = feat_dim_fn
        self.pre_logits = head_layers
        self.head_drop = nn.Dropout(drop_rate)
        self.num_features = head_layers[-2].out_features
        self.fc = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)
        return x if pre_logits else self.fc(self.head_drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, *args) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)


def seed003_cnn(num_classes: int = 2, in_chans: int = 1, drop_rate: float = 0.0, **_) -> nn.Module:
    """Seed 003: conv 32 -> pool -> conv 64 -> pool -> flatten -> dense 128 -> dense 64 -> softmax.
    L2 regularisation is the optimiser's weight decay. Global pooling to 8x8 before flattening makes
    the dense layer independent of the input size."""
    features = nn.Sequential(
        nn.Conv2d(in_chans, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(8), nn.Flatten(),
        nn.Linear(64 * 8 * 8, 128), nn.ReLU(inplace=True),
        nn.Linear(128, 64), nn.ReLU(inplace=True),
    )
    return _SeedCNN(features, None, head, num_classes, drop_rate)


def seed002_cnn(num_classes: int = 4, in_chans: int = 1, drop_rate: float = 0.5, **_) -> nn.Module:
    """Seed 002: a conv/ReLU/pool stack, dropout, dense, softmax."""
    chans = [in_chans, 32, 64, 128, 128]
    layers: list[nn.Module] = []
    for cin, cout in zip(chans[:-1], chans[1:]):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    features = nn.Sequential(*layers)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(128, 128), nn.ReLU(inplace=True))
    return _SeedCNN(features, None, head, num_classes, drop_rate)
