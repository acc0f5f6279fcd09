"""Image encoders: ego frames (uint8 HWC RGB) -> latent grids [C, h, w] for the planner and OVCR.

`ImageEncoder` is the interface; `ConvAutoencoder` is the project's small convolutional VAE (trained on its
own with `loss`, then frozen inside the policy); `encoder.kind: wan22` is the official Wan2.2 VAE through
diffusers (aha_wam.models.wan22, weights from a local path). Others plug in with `register_image_encoder`.
Pixels are mapped to [-1, 1] only here, never by callers.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from aha_wam.config import ImageEncoderConfig


class ImageEncoder(nn.Module):
    """Interface: uint8 images [..., H, W, 3] -> normalised latents [..., C, h, w] (about zero mean, unit std)."""

    config: ImageEncoderConfig

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c = self.config
        return c.latent_channels, c.latent_height, c.latent_width

    def to_unit_range(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Check uint8 [..., H, W, 3] and return ([N, 3, H, W] in [-1, 1], leading shape)."""
        c = self.config
        if not isinstance(images, torch.Tensor):
            raise ValueError(f'images must be a torch.Tensor, got {type(images).__name__}')
        if images.dtype != torch.uint8:
            raise ValueError(f'images must be uint8 RGB (0..255), got dtype {images.dtype}')
        if images.dim() < 3 or tuple(images.shape[-3:]) != (c.image_height, c.image_width, 3):
            raise ValueError(f'images must have shape [..., {c.image_height}, {c.image_width}, 3] (HWC RGB), '
                             f'got {tuple(images.shape)}')
        lead = tuple(images.shape[:-3])
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2)
        dtype = next(self.parameters()).dtype
        return x.to(dtype) / 127.5 - 1.0, lead

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = _group_norm(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = _group_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class ConvAutoencoder(ImageEncoder):
    """Small conv VAE. Encoder: a stride-2 stem, then per further factor 2 a residual block and a stride-2
    conv, a residual block at the latent resolution; nothing runs at full input resolution, because the
    executor encodes the newest image on every update (small: ~45 M MACs for 96x96).

    `encode` returns the posterior mean, standardised by per-channel `latent_mean`/`latent_std` buffers
    (set by `calibrate` after training) so flow matching sees roughly unit-variance latents.
    """

    def __init__(self, config: ImageEncoderConfig):
        super().__init__()
        self.config = config
        stages = int(math.log2(config.downsample))
        widths = [min(config.base_channels * 2 ** i, config.base_channels * 4) for i in range(stages)]
        enc: list[nn.Module] = [nn.Conv2d(3, widths[0], 4, stride=2, padding=1)]
        for i in range(1, stages):
            enc += [_ResBlock(widths[i - 1]), nn.Conv2d(widths[i - 1], widths[i], 4, stride=2, padding=1)]
        enc += [_ResBlock(widths[-1]), _group_norm(widths[-1]), nn.SiLU(),
                nn.Conv2d(widths[-1], 2 * config.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1), _ResBlock(widths[-1])]
        for i in reversed(range(1, stages)):
            dec += [nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(widths[i], widths[i - 1], 3, padding=1),
                    _ResBlock(widths[i - 1])]
        dec += [nn.Upsample(scale_factor=2, mode='nearest'), _group_norm(widths[0]), nn.SiLU(),
                nn.Conv2d(widths[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer('latent_mean', torch.zeros(config.latent_channels))
        self.register_buffer('latent_std', torch.ones(config.latent_channels))

    def _posterior(self, images: torch.Tensor):
        x, lead = self.to_unit_range(images)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0), lead

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        mean, _, lead = self._posterior(images)
        z = self._standardise(mean)
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents [..., C, h, w] -> images [..., 3, H, W] in [-1, 1] (float)."""
        lead = latents.shape[:-3]
        z = latents.reshape(-1, *latents.shape[-3:])
        z = z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        x = self.decoder(z).clamp(-1.0, 1.0)
        return x.reshape(*lead, *x.shape[1:])

    def loss(self, images: torch.Tensor, kl_weight: float = 1e-4) -> tuple[torch.Tensor, dict[str, float]]:
        """Autoencoder training loss: L1 reconstruction + kl_weight * KL(q(z|x) || N(0, I))."""
        mean, logvar, _ = self._posterior(images)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = self.decoder(z)
        target, _ = self.to_unit_range(images)
        rec = F.l1_loss(recon, target)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = rec + kl_weight * kl
        return loss, {'ae/recon_l1': float(rec.detach()), 'ae/kl': float(kl.detach())}

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Set latent_mean/latent_std from a sample of images (call once after training)."""
        mean, _, _ = self._posterior(images)
        self.latent_mean.copy_(mean.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(mean.std(dim=(0, 2, 3)).clamp_min(1e-4))


# 'wan22' (aha_wam.models.wan22) registers itself from aha_wam.models/__init__ (it imports this module).
IMAGE_ENCODERS: dict[str, Callable[[ImageEncoderConfig], ImageEncoder]] = {'conv': ConvAutoencoder}


def register_image_encoder(kind: str, factory: Callable[[ImageEncoderConfig], ImageEncoder]) -> None:
    """Plug in another encoder (e.g. Wan2.2's VAE loaded from disk) under `encoder.kind = kind`."""
    IMAGE_ENCODERS[kind] = factory


def build_image_encoder(config: ImageEncoderConfig) -> ImageEncoder:
    if config.kind not in IMAGE_ENCODERS:
        raise ValueError(f'encoder.kind={config.kind!r} is not registered; known: {sorted(IMAGE_ENCODERS)} '
                         '(register one with aha_wam.models.vae.register_image_encoder)')
    return IMAGE_ENCODERS[config.kind](config)


def patchify(latents: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, F, C, h, w] -> [B, F * (h/p) * (w/p), C * p * p] tokens, frame-major then row-major."""
    b, f, c, h, w = latents.shape
    x = latents.reshape(b, f, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)          # B F h' w' C p p
    return x.reshape(b, f * (h // patch) * (w // patch), c * patch * patch)


def unpatchify(tokens: torch.Tensor, frames: int, channels: int, height: int, width: int, patch: int
               ) -> torch.Tensor:
    """Inverse of `patchify`: [B, F*h'*w', C*p*p] -> [B, F, C, h, w]."""
    b = tokens.shape[0]
    x = tokens.reshape(b, frames, height // patch, width // patch, channels, patch, patch)
    x = x.permute(0, 1, 4, 2, 5, 3, 6)          # B F C h' p w' p
    return x.reshape(b, frames, channels, height, width)
