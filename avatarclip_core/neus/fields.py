"""NeuS fields (docs/method.md §2.1, §3.1): SDF network, colour network with an optional texture head,
variance network, and `NeusModel` bundling them.

All fields take points in the avatar frame (metres, docs/design.md §3) inside the unit sphere. The networks follow
NeuS / IDR exactly (positional encoding L = 6, geometric init to a sphere of radius 0.5, weight norm,
softplus β = 100, skip connection) as configured by AvatarCLIP.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from .hashgrid import HashGridEncoding
from .params import NeusModelParams, RenderingNetworkParams, SDFNetworkParams


def positional_encoding(x: torch.Tensor, multires: int) -> torch.Tensor:
    """NeRF/NeuS positional encoding: [x, sin(2^0 x), cos(2^0 x), …, sin(2^(L−1) x), cos(2^(L−1) x)].

    Args:
        x: (N, 3) float points. multires: L (0 → identity).
    Returns:
        (N, 3 + 6L) float; 39 dims for L = 6 (docs/method.md §2.1).
    """
    if multires == 0:
        return x
    out = [x]
    for i in range(multires):
        f = 2.0 ** i
        out += [torch.sin(x * f), torch.cos(x * f)]
    return torch.cat(out, -1)


def _maybe_wn(lin: nn.Linear, on: bool) -> nn.Module:
    return _weight_norm(lin) if on else lin


class SDFNetwork(nn.Module):
    """IDR/NeuS SDF MLP f(x) → (sdf, feature) (docs/method.md §2.1).

    Layers dims = [3 + 6L] + [d_hidden]·n_layers + [1 + d_hidden]; layers listed in `skip_in` take
    concat(x, encoded input)/√2. Softplus β = 100 between layers, weight norm on every linear.
    Geometric init (Atzmon & Lipman): last layer N(√π/√fan_in, 1e-4) with bias −`bias` so that f ≈ |x| − bias;
    first layer only the raw-xyz columns ~ N(0, √2/√fan_out); re-injected PE columns of skip layers zero.
    `params.geometric_init_skip_fix` (default True) also applies the last rule when the skip layer is the output layer, as in
    AvatarCLIP's small/full configs (skip_in = [n_layers]); the literal reference code does not, and its
    init is then not a sphere (SDF(0) ≈ +1.6). False reproduces the literal code.

    `params.encoding` "frequency" (default) is the reference's positional encoding; "hashgrid" replaces it by
    [xyz, multiresolution hash-grid features] (`hashgrid.HashGridEncoding`, Instant-NGP; from `params.hash`)
    — the `fast` preset's encoding. The geometric init is the same (encoding columns start at zero weight).

    forward(x (N, 3)) → (N, 1 + d_hidden): column 0 is the SDF in metres, the rest the feature vector.
    Built from an `SDFNetworkParams` (defaults: the small preset); raises ConfigError on invalid parameters.
    """

    def __init__(self, params: SDFNetworkParams | None = None):
        super().__init__()
        p = (params or SDFNetworkParams()).validate()
        d_hidden, n_layers, multires, bias = p.d_hidden, p.n_layers, p.multires, p.bias
        geometric_init, weight_norm, skip_out_fix = p.geometric_init, p.weight_norm, p.geometric_init_skip_fix
        self.multires, self.scale, self.skip_in = multires, p.scale, tuple(p.skip_in)
        self.encoding = p.encoding
        self.grid = HashGridEncoding(**p.hash.to_dict()) if p.encoding == "hashgrid" else None
        d_in = 3 + (self.grid.out_dim if self.grid is not None else 6 * multires)
        has_enc = d_in > 3
        dims = [d_in] + [d_hidden] * n_layers + [1 + d_hidden]
        self.d_in, self.d_out = d_in, dims[-1]
        self.num_layers = len(dims)
        layers = []
        for l in range(self.num_layers - 1):
            out_dim = dims[l + 1] - dims[0] if l + 1 in self.skip_in else dims[l + 1]
            lin = nn.Linear(dims[l], out_dim)
            if geometric_init:
                with torch.no_grad():
                    if l == self.num_layers - 2 and l in self.skip_in and skip_out_fix and has_enc:
                        # Output layer that is also a skip layer (AvatarCLIP's configs): IDR's init applied
                        # literally would feed the re-injected encoding with mean weights (SDF(0) ≈ +1.6, no
                        # sphere). Zero the re-injected columns and scale the mean for the narrower hidden
                        # part (dims[l] − dims[0] units) and the 1/√2, so that f(x) ≈ |x| − bias.
                        n_h = dims[l] - dims[0]
                        nn.init.normal_(lin.weight, mean=math.sqrt(math.pi) * math.sqrt(2) / math.sqrt(n_h),
                                        std=1e-4)
                        nn.init.constant_(lin.weight[:, n_h:], 0.0)
                        nn.init.constant_(lin.bias, -bias)
                    elif l == self.num_layers - 2:
                        nn.init.normal_(lin.weight, mean=math.sqrt(math.pi) / math.sqrt(dims[l]), std=1e-4)
                        nn.init.constant_(lin.bias, -bias)
                    elif has_enc and l == 0:
                        nn.init.constant_(lin.bias, 0.0)
                        nn.init.constant_(lin.weight[:, 3:], 0.0)
                        nn.init.normal_(lin.weight[:, :3], 0.0, math.sqrt(2) / math.sqrt(out_dim))
                    elif has_enc and l in self.skip_in:
                        nn.init.constant_(lin.bias, 0.0)
                        nn.init.normal_(lin.weight, 0.0, math.sqrt(2) / math.sqrt(out_dim))
                        nn.init.constant_(lin.weight[:, -(dims[0] - 3):], 0.0)
                    else:
                        nn.init.constant_(lin.bias, 0.0)
                        nn.init.normal_(lin.weight, 0.0, math.sqrt(2) / math.sqrt(out_dim))
            layers.append(_maybe_wn(lin, weight_norm))
        self.layers = nn.ModuleList(layers)
        self.activation = nn.Softplus(beta=100)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) points → (N, d_in) network input: PE(x·scale), or [x·scale, hash features(x·scale)]."""
        x = x * self.scale
        if self.grid is not None:
            return torch.cat([x, self.grid(x)], -1)
        return positional_encoding(x, self.multires)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = self.encode(x)
        h = inputs
        for l, lin in enumerate(self.layers):
            if l in self.skip_in:
                h = torch.cat([h, inputs], -1) / math.sqrt(2)
            h = lin(h)
            if l < self.num_layers - 2:
                h = self.activation(h)
        return torch.cat([h[:, :1] / self.scale, h[:, 1:]], -1)

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) → (N, 1) signed distance (metres; negative inside)."""
        return self.forward(x)[:, :1]

    def sdf_and_gradient(self, x: torch.Tensor, create_graph: bool = True):
        """SDF, feature and ∇f at points (N, 3).

        Returns (sdf (N, 1), feature (N, d_hidden), gradient (N, 3)). With create_graph the gradient is
        differentiable (needed for the eikonal term and normal-based losses); the autograd graph is always
        enabled inside, so this also works under `torch.no_grad()` callers (the gradient is then detached).
        """
        with torch.enable_grad():
            x = x.detach().requires_grad_(True) if not x.requires_grad else x
            out = self.forward(x)
            sdf = out[:, :1]
            grad, = torch.autograd.grad(sdf, x, torch.ones_like(sdf), create_graph=create_graph,
                                        retain_graph=create_graph)
        if not create_graph:
            out, grad = out.detach(), grad.detach()
        return out[:, :1], out[:, 1:], grad


def fit_sphere(sdf: SDFNetwork, radius: float = 0.5, steps: int = 100, seed: int = 0, batch: int = 2048,
               lr: float = 1e-3) -> float:
    """Tighten the geometric init to an exact sphere: `steps` Adam steps (lr 1e-3) of L1 between f(x) and
    |x| − radius at `batch` uniform points of [−1, 1]³ per step, drawn from a generator seeded by `seed`.

    IDR's geometric init is only approximately a sphere at AvatarCLIP's widths (3×128 / 4×256: zero level set
    radius 0.41–0.51, ±0.05–0.08 across directions); 100 steps bring it to 0.5 ± 0.02 in every direction,
    the state the reference describes. This is the common NeuS "sphere init" remedy, not in AvatarCLIP's
    code; `SDFNetworkParams.sphere_init_steps = 0` disables it. Returns the final L1 error (metres).
    """
    dev = next(sdf.parameters()).device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(sdf.parameters(), lr=lr)
    err = torch.zeros(())
    for _ in range(steps):
        x = (torch.rand(batch, 3, generator=g) * 2 - 1).to(dev)
        err = (sdf.sdf(x)[:, 0] - (x.norm(dim=-1) - radius)).abs().mean()
        opt.zero_grad(set_to_none=True)
        err.backward()
        opt.step()
    return float(err.detach())


class ColorNetwork(nn.Module):
    """NeuS rendering network, mode `no_view_dir` (docs/method.md §2.1, §3.1).

    Input concat(x (3), raw ∇f (3), feature (d_feature)) → `params.n_layers` ReLU layers of `params.d_hidden` → 3,
    sigmoid. With `extra_head` a second weight-normed linear head (d_hidden → 3, sigmoid) branches from the
    last hidden activation (AvatarCLIP's `extra_lin`, the texture head 2).

    forward(points, gradients, features) → (N, 3) or, with the extra head, (N, 6) = [head 1, head 2] in [0, 1].
    """

    def __init__(self, params: RenderingNetworkParams | None = None, d_feature: int = 128, extra_head: bool = False):
        super().__init__()
        p = params or RenderingNetworkParams()
        self.d_in = 6 + d_feature
        dims = [self.d_in] + [p.d_hidden] * p.n_layers + [3]
        self.layers = nn.ModuleList(_maybe_wn(nn.Linear(dims[i], dims[i + 1]), p.weight_norm)
                                    for i in range(len(dims) - 1))
        self.extra = _maybe_wn(nn.Linear(dims[-2], 3), p.weight_norm) if extra_head else None

    def forward(self, points: torch.Tensor, gradients: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        h = torch.cat([points, gradients, features], -1)
        for lin in self.layers[:-1]:
            h = torch.relu(lin(h))
        out = torch.sigmoid(self.layers[-1](h))
        if self.extra is not None:
            out = torch.cat([out, torch.sigmoid(self.extra(h))], -1)
        return out


class VarianceNetwork(nn.Module):
    """Single learnable v; inv_s = exp(10·v) clipped to [1e-6, 1e6] (NeuS `SingleVarianceNetwork`)."""

    def __init__(self, init_val: float = 0.3):
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(float(init_val)))

    def inv_s(self) -> torch.Tensor:
        """() scalar tensor inv_s (1/s of the logistic density; ≈ 20.1 at init v = 0.3)."""
        return torch.exp(self.variance * 10.0).clip(1e-6, 1e6)


class NeusModel(nn.Module):
    """SDF + variance + colour networks of one avatar, with the `NeusModelParams` that built them.

    Attributes: sdf (SDFNetwork), variance (VarianceNetwork), color (ColorNetwork; `has_texture_head`
    tells whether head 2 exists), params (NeusModelParams: the network groups and the renderer settings).
    Move with `.to(device)`. Raises ConfigError on invalid parameters.
    """

    def __init__(self, params: NeusModelParams, texture_head: bool = False):
        super().__init__()
        self.params = params.model_params().validate()
        self.sdf = SDFNetwork(self.params.sdf_network)
        self.variance = VarianceNetwork(self.params.variance_network.init_val)
        self.color = ColorNetwork(self.params.rendering_network, self.params.sdf_network.d_hidden,
                                  extra_head=texture_head)

    @classmethod
    def from_params(cls, params: NeusModelParams, texture_head: bool = False, seed: int = 0) -> "NeusModel":
        """Fresh model from params: IDR geometric init, then `sdf_network.sphere_init_steps` steps of
        `fit_sphere` (seeded by `seed`); `texture_head` adds colour head 2."""
        model = cls(params, texture_head)
        sdf = model.params.sdf_network
        if sdf.geometric_init and sdf.sphere_init_steps > 0:
            fit_sphere(model.sdf, sdf.bias, sdf.sphere_init_steps, seed)
        return model

    @property
    def has_texture_head(self) -> bool:
        return self.color.extra is not None

    def to_dict(self) -> dict:
        """{'params': dict, 'texture_head': bool, 'state_dict': …} (CPU tensors) for torch.save."""
        return {"params": self.params.to_dict(), "texture_head": self.has_texture_head,
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_dict(cls, d: dict, device="cpu") -> "NeusModel":
        """Inverse of `to_dict`; raises ValueError if the dict lacks 'params' or 'state_dict'."""
        if not isinstance(d, dict) or "params" not in d or "state_dict" not in d:
            raise ValueError("NeusModel.from_dict needs a dict with 'params' and 'state_dict' "
                             "(as written by NeusModel.to_dict / the stage checkpoints)")
        model = cls(NeusModelParams.from_dict(d["params"]), bool(d.get("texture_head", False)))
        model.load_state_dict(d["state_dict"])
        return model.to(device)

    def with_texture_head(self, generator: torch.Generator | None = None) -> "NeusModel":
        """Copy of this model with a freshly, randomly initialised colour head 2 (docs/method.md §3.1).

        SDF, variance, colour trunk and head 1 are copied exactly; head 2 gets PyTorch's default Linear
        init (Kaiming-uniform weights, uniform bias), drawn from `generator` for reproducibility.
        """
        new = NeusModel(self.params, texture_head=True).to(next(self.parameters()).device)
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("color.extra") for k in missing), (missing, unexpected)
        width = self.params.rendering_network.d_hidden
        lin = nn.Linear(width, 3)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(width)
            w = (torch.rand(3, width, generator=generator) * 2 - 1) * bound
            b = (torch.rand(3, generator=generator) * 2 - 1) * bound
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        new.color.extra = _maybe_wn(lin, self.params.rendering_network.weight_norm).to(next(self.parameters()).device)
        return new
