"""A RealNVP normalising flow over the pose VAE's 32-d latent: the prior of the "flow" pose generator
(docs/method.md §6.1, AvatarCLIP's VPoserRealNVP; docs/method.md, Motion priors, "Pose flow").

`PoseFlow` maps a base sample u ~ N(0, I₃₂) to a pose-VAE latent z through 8 affine coupling blocks, the
reference's architecture: each block has an s-net Linear(32 → 256)–LeakyReLU–Linear(256 → 256)–LeakyReLU–
Linear(256 → 32)–Tanh and a t-net of the same shape without the Tanh, and a fixed random binary mask m; in the
sampling direction x ← m⊙x + (1 − m)⊙(x·exp(s(m⊙x)) + t(m⊙x)). Ours differs in two ways: the flow is not
conditioned on a CLIP text feature (there are no text–pose pairs to train on and no CLIP weights here; the text
enters through CLIP guidance at generation time instead), and a fixed affine layer (the training latents' mean and
standard deviation) sits after the last block, so the blocks see unit-scale data. The masks come in complementary
pairs (m, 1 − m), so every coordinate is transformed.

Trained by maximum likelihood on posterior samples z ~ q(z | pose) of the pose VAE for the training poses
(`scripts/build_pose_flow.py`); shipped as avatarclip_core/assets/pose_flow.pt together with the
fingerprint of the pose VAE it was trained on (`vae_fingerprint`): `load_pose_flow` refuses a flow whose VAE has
since been retrained.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
from torch import nn

from .priors import ASSETS, PoseVAE, _load, load_pose_vae

POSE_FLOW_PATH = ASSETS / "pose_flow.pt"

__all__ = ["POSE_FLOW_PATH", "PoseFlow", "load_pose_flow", "vae_fingerprint"]


def _mlp(dim: int, hidden: int, tanh: bool) -> nn.Sequential:
    layers = [nn.Linear(dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(), nn.Linear(hidden, dim)]
    return nn.Sequential(*layers, *([nn.Tanh()] if tanh else []))


def coupling_masks(dim: int, num_blocks: int, seed: int = 0) -> torch.Tensor:
    """(num_blocks, 1, dim) float binary masks: random halves, in complementary pairs (m, 1 − m, m', 1 − m', …),
    so that every coordinate is transformed at least once per pair. Deterministic given `seed`."""
    g = torch.Generator().manual_seed(seed)
    masks = []
    for b in range(num_blocks):
        if b % 2 == 0:
            m = torch.zeros(dim)
            m[torch.randperm(dim, generator=g)[:dim // 2]] = 1.0
        else:
            m = 1.0 - masks[-1][0]
        masks.append(m[None])
    return torch.stack(masks)


class PoseFlow(nn.Module):
    """RealNVP over pose-VAE latents (see the module docstring). Unconditional; float32; any device.

    Args:
        dim: latent size (the pose VAE's `latent_dim`, 32). hidden: width of the s/t nets (reference 256).
        num_blocks: coupling blocks (reference 8). mask_seed: seed of the random masks.
    Buffers: `mask` (num_blocks, 1, dim); `shift`, `scale` (dim,): the last, fixed affine layer z = shift + scale·x
    (the training latents' mean and standard deviation, set by the build script).
    """

    def __init__(self, dim: int = 32, hidden: int = 256, num_blocks: int = 8, mask_seed: int = 0):
        super().__init__()
        self.config = dict(dim=dim, hidden=hidden, num_blocks=num_blocks, mask_seed=mask_seed)
        self.dim = dim
        self.register_buffer("mask", coupling_masks(dim, num_blocks, mask_seed))
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.s = nn.ModuleList(_mlp(dim, hidden, tanh=True) for _ in range(num_blocks))
        self.t = nn.ModuleList(_mlp(dim, hidden, tanh=False) for _ in range(num_blocks))

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampling direction: base u (..., dim) → latent z (..., dim), log|det ∂z/∂u| (...,). Differentiable."""
        x, logdet = u, u.new_zeros(u.shape[:-1])
        for m, s_net, t_net in zip(self.mask, self.s, self.t):
            xm = m * x
            s, t = s_net(xm), t_net(xm)
            x = xm + (1 - m) * (x * s.exp() + t)
            logdet = logdet + ((1 - m) * s).sum(-1)
        return self.shift + self.scale * x, logdet + self.scale.log().sum()

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density direction: latent z (..., dim) → base u (..., dim), log|det ∂u/∂z| (...,). Differentiable."""
        x = (z - self.shift) / self.scale
        logdet = -self.scale.log().sum().expand(z.shape[:-1]).clone()
        for m, s_net, t_net in zip(reversed(self.mask), reversed(self.s), reversed(self.t)):
            xm = m * x
            s, t = s_net(xm), t_net(xm)
            x = xm + (1 - m) * (x - t) * (-s).exp()
            logdet = logdet - ((1 - m) * s).sum(-1)
        return x, logdet

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) in nats, (..., dim) → (...,): log N(u; 0, I) + log|det ∂u/∂z|."""
        u, logdet = self.inverse(z)
        return -0.5 * (u.pow(2).sum(-1) + self.dim * math.log(2 * math.pi)) + logdet

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents z (n, dim) from u ~ N(0, I) (on the CPU generator `generator`, then moved to the flow's device)."""
        u = torch.randn(n, self.dim, generator=generator).to(self.shift)
        return self(u)[0]


def vae_fingerprint(vae: PoseVAE) -> str:
    """16 hex digits identifying a pose VAE's weights: SHA-256 of its float16 state dict (sorted keys), the form
    in which priors are shipped, so a loaded and a freshly saved copy agree."""
    h = hashlib.sha256()
    for k, v in sorted(vae.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().half().numpy().tobytes() if v.is_floating_point() else v.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def load_pose_flow(path: str | os.PathLike | None = None, vae: PoseVAE | None = None, device="cpu") -> PoseFlow:
    """The shipped pose flow (avatarclip_core/assets/pose_flow.pt), eval mode, frozen weights (gradients still
    reach u). `.extra` holds 'vae_fingerprint' and 'figures'.

    Args:
        vae: the pose VAE the flow's latents are decoded with (default `load_pose_vae()`); its fingerprint must be
            the one the flow was trained on.
    Raises:
        FileNotFoundError: the file is missing. ValueError: it holds another kind of model, or the flow was trained
        on another pose VAE (retrain it with `python scripts/build_pose_flow.py`).
    """
    path = Path(path) if path is not None else POSE_FLOW_PATH
    if not path.exists():
        raise FileNotFoundError(f"PoseFlow weights not found at {path}; build them with "
                                f"`python scripts/build_pose_flow.py`")
    flow = _load(PoseFlow, path, POSE_FLOW_PATH, device)
    want, have = flow.extra.get("vae_fingerprint"), vae_fingerprint(vae if vae is not None else load_pose_vae())
    if want != have:
        raise ValueError(f"{path} was trained on another pose VAE (fingerprint {want}, the pose VAE now is {have}); "
                         f"retrain it with `python scripts/build_pose_flow.py`")
    return flow
