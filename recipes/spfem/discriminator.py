"""A patch discriminator for the optional adversarial term of the SPFEM generator.

    frames (n, 3, h, w) RGB in [0, 1] -> 4x4 stride-2 convs (LeakyReLU, spectral norm)
                                      -> (n, 1, h / 2^k, w / 2^k) real/fake scores per patch

Trained with the hinge loss: D minimises mean(relu(1 - D(real))) + mean(relu(1 + D(fake))),
the generator minimises -mean(D(fake)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["PatchDiscriminator", "hinge_d_loss", "hinge_g_loss"]


class PatchDiscriminator(nn.Module):
    """Patch scores of RGB frames (spectrally normalised convolutions).

    Args:
        channels: Channels of the first convolution (doubled per layer, at most 8x).
        layers: Stride-2 convolutions.

    Examples:
        >>> d = PatchDiscriminator(channels=8, layers=3)
        >>> tuple(d(torch.rand(2, 3, 64, 64)).shape)
        (2, 1, 8, 8)
    """

    def __init__(self, channels: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in = 3
        for i in range(layers):
            c_out = channels * min(2**i, 8)
            mods += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c_in = c_out
        mods.append(spectral_norm(nn.Conv2d(c_in, 1, 3, 1, 1)))
        self.net = nn.Sequential(*mods)

    def forward(self, frames: Tensor) -> Tensor:
        """Score frames.

        Args:
            frames: (n, 3, h, w) RGB in [0, 1].

        Returns:
            (n, 1, h', w') patch scores.
        """
        return self.net(frames * 2 - 1)


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's hinge loss.

    Args:
        real: Scores of real frames.
        fake: Scores of generated frames (detached from the generator).

    Returns:
        mean(relu(1 - real)) + mean(relu(1 + fake)).

    Examples:
        >>> float(hinge_d_loss(torch.ones(4), -torch.ones(4)))
        0.0
    """
    return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """The generator's hinge loss.

    Args:
        fake: Scores of generated frames.

    Returns:
        -mean(fake).

    Examples:
        >>> float(hinge_g_loss(torch.full((3,), 2.0)))
        -2.0
    """
    return -fake.mean()
