r"""`LatentUNet`: the noise predictor :math:`\varepsilon_\theta(z_t, t, \text{prompt})` of latent diffusion, on the
autoencoder's 4×7×7 latent, reading the prompt through cross-attention (as Stable Diffusion's U-Net does)::

    z_t 4×7×7 ─conv─ 7×7 ─Res+XAttn──────────────────────────── Res+XAttn─ 7×7 ─conv─▶ ε̂ 4×7×7
                          ↓ (stride-2 conv)                      ↑ (nearest + conv)
                         4×4 ─Res+XAttn ── Res, Attn, XAttn, Res ── Res+XAttn─ 4×4

* ``Res`` is the pixel U-Net's `ResBlock` (time embedding added inside), ``Attn`` its self-attention;
* ``XAttn`` (`CrossAttentionBlock`) lets every latent position attend to the prompt's tokens: queries from
  the image, keys and values from the `PromptEncoder`'s token vectors (`diffcourse.latent.cross_attention`);
* the prompt encoder is part of this network and trained with it; ``tokens=None`` is the empty prompt
  ``""``, the unconditional model of classifier-free guidance (training replaces prompts by it with
  probability ``p_uncond``).

``model(z_t, t)`` or ``model(z_t, t, tokens)`` with ``tokens = tokenize(prompts)``. The config also records
which autoencoder the latents came from and the scale factor they were multiplied by, so a checkpoint
carries everything `sample_prompts` needs.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..latent import cross_attention
from .embeddings import TimeEmbedding
from .text import PromptEncoder, tokenize
from .unet import AttentionBlock, ResBlock

__all__ = ["LatentUNet", "CrossAttentionBlock", "prompt_eps_fn", "sample_latent_digits"]


class CrossAttentionBlock(nn.Module):
    r"""Residual single-head cross-attention from image positions to prompt tokens:

    .. math:: h \leftarrow h + W_o\,\mathrm{softmax}\Big(\frac{(\mathrm{GN}(h)W_q)(cW_k)^\top}{\sqrt d}\Big)(cW_v)

    with padding tokens masked. ``keep_attention = True`` stores the last attention maps ``(B, HW, M)``
    in ``last_attention`` (the lesson draws them). The output projection starts at zero, so a fresh
    block is the identity.
    """

    def __init__(self, ch: int, context_dim: int, dim: int | None = None) -> None:
        super().__init__()
        dim = dim or ch
        self.norm = nn.GroupNorm(min(8, ch), ch)
        self.to_q = nn.Linear(ch, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.proj = nn.Linear(dim, ch)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.keep_attention = False
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C): one query per position
        context = context.to(h.dtype)
        # nn.Linear stores its weight as (out, in): the matrices of x @ W are the transposes
        out, attn = cross_attention(h, context, self.to_q.weight.T.to(h.dtype), self.to_k.weight.T.to(h.dtype),
                                    self.to_v.weight.T.to(h.dtype), mask)
        if self.keep_attention:
            self.last_attention = attn.detach().float().cpu()
        return x + self.proj(out).transpose(1, 2).reshape(B, C, H, W)


class LatentUNet(nn.Module):
    r"""A small two-level U-Net :math:`\varepsilon_\theta(z_t, t, \text{prompt})` on ``latent_ch``×7×7 latents.

    ``ch`` channels at 7×7 and ``2·ch`` at 4×4, ``context_dim``-dimensional token vectors from a
    `PromptEncoder` with ``text_layers`` self-attention layers. ``scale_factor`` and ``autoencoder``
    are recorded (not used by ``forward``): the latents' scale and the name of their autoencoder.
    """

    def __init__(self, latent_ch: int = 4, ch: int = 64, context_dim: int = 64, text_layers: int = 1,
                 scale_factor: float = 1.0, autoencoder: str = "latent-vae") -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(latent_ch=latent_ch, ch=ch, context_dim=context_dim,
                                           text_layers=text_layers, scale_factor=scale_factor, autoencoder=autoencoder)
        self.latent_ch, self.scale_factor, self.autoencoder = latent_ch, float(scale_factor), autoencoder
        emb = 4 * ch
        self.text = PromptEncoder(context_dim, text_layers)
        self.time = TimeEmbedding(emb, sin_dim=ch)
        self.conv_in = nn.Conv2d(latent_ch, ch, 3, padding=1)
        self.res_in, self.x_in = ResBlock(ch, ch, emb), CrossAttentionBlock(ch, context_dim)
        self.down = nn.Conv2d(ch, ch, 3, stride=2, padding=1)                          # 7×7 → 4×4
        self.res_low, self.x_low = ResBlock(ch, 2 * ch, emb), CrossAttentionBlock(2 * ch, context_dim)
        self.mid1, self.mid_attn = ResBlock(2 * ch, 2 * ch, emb), AttentionBlock(2 * ch)
        self.mid_x, self.mid2 = CrossAttentionBlock(2 * ch, context_dim), ResBlock(2 * ch, 2 * ch, emb)
        self.res_up_low, self.x_up_low = ResBlock(4 * ch, 2 * ch, emb), CrossAttentionBlock(2 * ch, context_dim)
        self.up = nn.Conv2d(2 * ch, ch, 3, padding=1)                                 # after upsampling to 7×7
        self.res_out, self.x_out = ResBlock(2 * ch, ch, emb), CrossAttentionBlock(ch, context_dim)
        self.norm_out = nn.GroupNorm(8, ch)
        self.conv_out = nn.Conv2d(ch, latent_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def encode_prompt(self, tokens: torch.Tensor | None, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Token vectors and mask of ``tokens`` (``None``: the empty prompt), broadcast to ``batch`` rows."""
        tokens = tokenize("") if tokens is None else torch.as_tensor(tokens)
        tokens = tokens.to(device)
        if tokens.shape[0] == 1 and batch > 1:
            tokens = tokens.expand(batch, -1)
        return self.text(tokens)

    def cross_attention_blocks(self) -> Sequence[CrossAttentionBlock]:
        """The five cross-attention blocks, from the input side to the output side."""
        return [self.x_in, self.x_low, self.mid_x, self.x_up_low, self.x_out]

    def forward(self, z: torch.Tensor, t: torch.Tensor | int, tokens: torch.Tensor | None = None) -> torch.Tensor:
        B = z.shape[0]
        t = torch.as_tensor(t, device=z.device)
        if t.numel() == 1:
            t = t.reshape(1).expand(B)
        emb = self.time(t)
        ctx, mask = self.encode_prompt(tokens, B, z.device)
        h1 = self.x_in(self.res_in(self.conv_in(z), emb), ctx, mask)                  # ch × 7×7
        h2 = self.x_low(self.res_low(self.down(h1), emb), ctx, mask)                   # 2ch × 4×4
        m = self.mid2(self.mid_x(self.mid_attn(self.mid1(h2, emb)), ctx, mask), emb)
        u = self.x_up_low(self.res_up_low(torch.cat([m, h2], 1), emb), ctx, mask)
        u = self.up(F.interpolate(u, size=h1.shape[-2:], mode="nearest"))
        u = self.x_out(self.res_out(torch.cat([u, h1], 1), emb), ctx, mask)
        return self.conv_out(F.silu(self.norm_out(u)))


def prompt_eps_fn(model: LatentUNet, tokens: torch.Tensor, w: float = 1.0):
    r"""Classifier-free guidance with prompts: :math:`(z_t, t) \mapsto \varepsilon_u + w(\varepsilon_c - \varepsilon_u)`, where
    :math:`\varepsilon_c` reads ``tokens`` (`tokenize`) and :math:`\varepsilon_u` the empty prompt ``""``.

    As `diffcourse.samplers.cfg_eps_fn` for labels: ``w = 1`` is the conditional model alone (one network
    evaluation per step), ``w = 0`` the unconditional one; otherwise both run in one doubled batch (two NFE).
    """
    from ..samplers.guidance import cfg_combine

    def f(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        toks = torch.as_tensor(tokens).to(z.device).expand(z.shape[0], -1)
        empty = tokenize("").to(z.device).expand(z.shape[0], -1)
        if w == 1.0:
            return model(z, t, toks)
        if w == 0.0:
            return model(z, t, empty)
        eps_c, eps_u = model(torch.cat([z, z]), torch.cat([t, t]), torch.cat([toks, empty])).chunk(2)
        return cfg_combine(eps_c, eps_u, w)
    return f


@torch.no_grad()
def sample_latent_digits(model: LatentUNet, autoencoder: nn.Module, schedule, prompts: Sequence[str], *, w: float = 1.0,
                         steps: int = 50, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """One digit per prompt (``""`` = unconditional): `diffcourse.latent.latent_sample` with `prompt_eps_fn`,
    DDIM with ``steps`` steps (η = 0) in the latent, decoded by ``autoencoder`` after dividing by the model's scale."""
    from ..latent import latent_sample

    tokens = tokenize(list(prompts))
    shape = (len(tokens), model.latent_ch, 7, 7)
    return latent_sample(prompt_eps_fn(model, tokens, w), schedule, autoencoder.decode, shape,
                         scale=model.scale_factor, steps=steps, generator=generator, device=device)
