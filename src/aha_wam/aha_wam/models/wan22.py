"""Image encoder kind 'wan22': the Wan2.2 VAE encoder through diffusers' `AutoencoderKLWan` (no port of its code).

The official AHA-WAM encodes every image as one video frame with the Wan2.2 VAE (`WanVideoVAE38`: 2 x 2
patchify, causal 3-D encoder, `quant_conv`), takes the posterior mean (the first 48 channels) and normalises it
with the Wan2.2 latent tables: z = (mu - mean) * (1 / std). A 384 x 320 composite becomes a 48 x 24 x 20 latent.

Weights are read from a LOCAL path (config `encoder.weights`, overridden by the environment variable
AHA_WAM_WAN22_VAE), never downloaded:
  - a diffusers directory (config.json + diffusion_pytorch_model.safetensors), e.g. the `vae/` folder of
    Wan-AI/Wan2.2-TI2V-5B-Diffusers, or its parent holding `vae/`;
  - a single diffusers-named .safetensors file, built with the Wan2.2 configuration below.
The VAE is loaded on first use (so a policy can be built, counted or converted without it), its decoder is
dropped (the policy only encodes), and it is kept outside the policy's state dict: the checkpoint does not
carry 1.4 GB of VAE weights that are the same for every checkpoint. It follows the policy's .to(device, dtype).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from aha_wam.config import ImageEncoderConfig
from aha_wam.models.vae import ImageEncoder

ENV_WEIGHTS = 'AHA_WAM_WAN22_VAE'

# Wan2.2 latent normalisation (48 channels): the tables of the official `WanVideoVAE38` (also the `latents_mean`
# / `latents_std` of the Wan2.2 diffusers VAE config). A diffusers directory's own config values take precedence.
WAN22_LATENTS_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667)
WAN22_LATENTS_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744)

# AutoencoderKLWan arguments of the Wan2.2 VAE (z 48, base 160, residual blocks, 2 x 2 patchify, /16 spatial),
# used for a single weights file that comes without its config.json.
WAN22_VAE_CONFIG = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                        attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0, is_residual=True,
                        in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16,
                        scale_factor_temporal=4, latents_mean=list(WAN22_LATENTS_MEAN),
                        latents_std=list(WAN22_LATENTS_STD))


class Wan22Error(ValueError):
    """The Wan2.2 VAE cannot be loaded as configured; the message names the path and what is wrong."""


def _require_diffusers():
    try:
        from diffusers import AutoencoderKLWan
    except ImportError as exc:     # pinned in requirements/ml.txt
        raise Wan22Error(f'encoder.kind=wan22 needs diffusers (requirements/ml.txt): {exc}') from None
    return AutoencoderKLWan


def load_wan22_vae(path: str | os.PathLike):
    """AutoencoderKLWan (encoder and quant_conv; decoder dropped) from a local diffusers dir or safetensors file."""
    AutoencoderKLWan = _require_diffusers()
    p = Path(path).expanduser()
    if p.is_dir():
        folder = p if (p / 'config.json').is_file() else p / 'vae'
        if not (folder / 'config.json').is_file():
            raise Wan22Error(f'{p}: no config.json here or in vae/ (expected a diffusers AutoencoderKLWan directory)')
        try:
            vae = AutoencoderKLWan.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:   # diffusers raises OSError/ValueError/EnvironmentError variants
            raise Wan22Error(f'{folder}: cannot load AutoencoderKLWan ({type(exc).__name__}: {exc})') from None
    elif p.is_file():
        if p.suffix != '.safetensors':
            raise Wan22Error(f'{p}: only .safetensors weights are read (checkpoints are never unpickled)')
        from safetensors.torch import load_file
        state = load_file(str(p))
        state = {k[len('vae.'):] if k.startswith('vae.') else k: v for k, v in state.items()}
        if 'encoder.conv1.weight' in state or any(k.startswith('model.') for k in state):
            raise Wan22Error(f'{p}: original Wan/DiffSynth key names; use the diffusers layout '
                             '(Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/ folder)')
        vae = AutoencoderKLWan(**WAN22_VAE_CONFIG)
        needed = {k for k in vae.state_dict() if k.startswith(('encoder.', 'quant_conv.'))}
        missing = sorted(needed - set(state))
        if missing:
            raise Wan22Error(f'{p}: missing encoder tensors {missing[:4]} (not a Wan2.2 VAE?)')
        wrong = [k for k in needed if tuple(state[k].shape) != tuple(vae.state_dict()[k].shape)]
        if wrong:
            raise Wan22Error(f'{p}: tensor shapes differ from the Wan2.2 VAE at {wrong[:4]}')
        vae.load_state_dict({k: state[k] for k in needed}, strict=False)
    else:
        raise Wan22Error(f'{p} does not exist (encoder.weights / {ENV_WEIGHTS})')
    vae.decoder = None          # encode only: the decoder is ~60 % of the weights
    vae.post_quant_conv = None
    return vae.eval().requires_grad_(False)


class Wan22Encoder(ImageEncoder):
    """uint8 [..., H, W, 3] -> normalised Wan2.2 latents [..., 48, H/16, W/16] (official `encode` of one frame)."""

    def __init__(self, config: ImageEncoderConfig):
        super().__init__()
        if config.downsample != 16:
            raise ValueError(f'encoder.kind=wan22 compresses 16x spatially; encoder.downsample is {config.downsample}')
        self.config = config
        # A parameter-free probe that follows .to(device, dtype): where and in what dtype the VAE must run.
        self.register_buffer('_probe', torch.zeros(0), persistent=False)
        self.__dict__['_vae'] = None            # not a submodule: outside state_dict() and parameters()
        self.register_buffer('latents_mean', torch.tensor(WAN22_LATENTS_MEAN), persistent=False)
        self.register_buffer('latents_std', torch.tensor(WAN22_LATENTS_STD), persistent=False)

    def reset_buffers(self) -> None:
        """(Re)create the non-persistent buffers on the CPU (after building on the meta device)."""
        self._probe = torch.zeros(0, dtype=self._probe.dtype)
        self.latents_mean = torch.tensor(WAN22_LATENTS_MEAN)
        self.latents_std = torch.tensor(WAN22_LATENTS_STD)

    @property
    def weights_path(self) -> str | None:
        return os.environ.get(ENV_WEIGHTS) or self.config.weights

    @property
    def vae(self):
        if self.__dict__['_vae'] is None:
            self.load()
        return self.__dict__['_vae']

    def load(self, path: str | os.PathLike | None = None) -> None:
        """Read the VAE now (nodes do this at configure); `path` overrides config and environment."""
        where = path or self.weights_path
        if not where:
            raise Wan22Error(f'encoder.kind=wan22 needs the Wan2.2 VAE: set encoder.weights or {ENV_WEIGHTS} to a '
                             'local diffusers AutoencoderKLWan directory or .safetensors file')
        vae = load_wan22_vae(where)
        z = int(vae.config.z_dim)
        if z != self.config.latent_channels:
            raise Wan22Error(f'{where}: VAE z_dim {z} != encoder.latent_channels {self.config.latent_channels}')
        if int(getattr(vae.config, 'scale_factor_spatial', 16)) != 16:
            raise Wan22Error(f'{where}: VAE compresses {vae.config.scale_factor_spatial}x, encoder.downsample is 16')
        mean, std = getattr(vae.config, 'latents_mean', None), getattr(vae.config, 'latents_std', None)
        if mean is not None and std is not None and len(mean) == z == len(std):
            self.latents_mean = torch.tensor(mean, dtype=torch.float32, device=self._probe.device)
            self.latents_std = torch.tensor(std, dtype=torch.float32, device=self._probe.device)
        elif z != len(WAN22_LATENTS_MEAN):
            raise Wan22Error(f'{where}: config has no latents_mean/latents_std for {z} channels')
        self.__dict__['_vae'] = vae.to(device=self._probe.device, dtype=self._probe.dtype)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.__dict__.get('_vae') is not None:
            self.__dict__['_vae'] = self.__dict__['_vae'].to(device=self._probe.device, dtype=self._probe.dtype)
        return self

    def to_unit_range(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        c = self.config
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            raise ValueError(f'images must be a uint8 RGB tensor, got {getattr(images, "dtype", type(images).__name__)}')
        if images.dim() < 3 or tuple(images.shape[-3:]) != (c.image_height, c.image_width, 3):
            raise ValueError(f'images must have shape [..., {c.image_height}, {c.image_width}, 3] (HWC RGB), '
                             f'got {tuple(images.shape)}')
        lead = tuple(images.shape[:-3])
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).to(self._probe.device, self._probe.dtype)
        return x * (2.0 / 255.0) - 1.0, lead       # as the official preprocessing, in the model dtype

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x, lead = self.to_unit_range(images)
        vae = self.vae
        with torch.no_grad():
            mu = vae.encode(x.unsqueeze(2)).latent_dist.mode()[:, :, 0]            # [N, z, h, w] posterior mean
        mean = self.latents_mean.to(mu.dtype)[:, None, None]
        inv_std = (1.0 / self.latents_std).to(mu.dtype)[:, None, None]
        z = (mu - mean) * inv_std
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError('the wan22 encoder keeps no decoder (video is never decoded at deployment)')

