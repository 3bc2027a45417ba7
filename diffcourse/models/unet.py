r"""`UNet`: the noise-prediction network :math:`\varepsilon_\theta(x_t, t[, y])` for 1×28×28 MNIST.

The shape of the network (Ho et al. 2020, scaled down to train on a CPU)::

    28×28 ─ResBlock──────────────────────────────────────────── ResBlock─ 28×28
       ↓ (stride-2 conv)                                         ↑ (nearest ×2 + conv)
    14×14 ─ResBlock──────────────────────────────── ResBlock─ 14×14
       ↓                                             ↑
     7×7 ─ResBlock+Attn ── ResBlock, Attn, ResBlock ── ResBlock+Attn─ 7×7

* every ResBlock is ``GroupNorm → SiLU → conv → (+ time/label embedding) → GroupNorm → SiLU → conv``
  plus a residual connection, so every layer knows the noise level :math:`t`;
* the time embedding is sinusoidal followed by an MLP (`TimeEmbedding`);
* self-attention runs at 7×7 only (49 tokens: cheap, and it lets distant strokes agree);
* the decoder concatenates the encoder's activations at the same resolution (skip connections);
* with ``num_classes`` set, a learned label embedding (with an extra *null* label, index
  ``num_classes``, used for classifier-free guidance) is added to the time embedding.

The forward convention is the package's: ``model(x, t)`` or ``model(x, t, y)``; ``y=None``
(or the null label) means "no class given". The last convolution starts at zero, so a fresh
network predicts :math:`\hat\varepsilon = 0` and training starts from a sensible point.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import LabelEmbedding, TimeEmbedding

__all__ = ["UNet", "ResBlock", "AttentionBlock"]


def _norm(ch: int, groups: int = 8) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, ch), ch)


class ResBlock(nn.Module):
    r"""Residual block with time injection: :math:`h = x' + \mathrm{conv}(\mathrm{SiLU}(\mathrm{GN}(\mathrm{conv}(\mathrm{SiLU}(\mathrm{GN}(x))) + W e)))`."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = _norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    r"""Single-head self-attention over the pixels: :math:`x + W_o\,\mathrm{softmax}(QK^\top/\sqrt d)\,V`."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = _norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None],
                                           v.transpose(1, 2)[:, None])[:, 0]  # (B, HW, C)
        return x + self.proj(h.transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    r"""A small U-Net :math:`\varepsilon_\theta(x_t, t[, y])` for ``in_ch``×28×28 images.

    ``ch`` base channels, multiplied by ``ch_mult`` at 28, 14 and 7 pixels;
    ``num_res_blocks`` ResBlocks per resolution; attention at the resolutions in
    ``attn_res``. ``config`` (a plain dict) rebuilds the same architecture:
    ``UNet(**model.config)``. With the defaults: about 0.6M parameters.
    """

    def __init__(self, in_ch: int = 1, ch: int = 32, ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_res: Sequence[int] = (7,), num_classes: int | None = None, dropout: float = 0.0,
                 image_size: int = 28) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(in_ch=in_ch, ch=ch, ch_mult=list(ch_mult), num_res_blocks=num_res_blocks,
                                           attn_res=list(attn_res), num_classes=num_classes, dropout=dropout,
                                           image_size=image_size)
        self.num_classes = num_classes
        emb_dim = 4 * ch
        self.time = TimeEmbedding(emb_dim, sin_dim=ch)
        self.label = LabelEmbedding(num_classes, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skip_chs, cur, res = [ch], ch, image_size
        for level, mult in enumerate(ch_mult):
            out = ch * mult
            for _ in range(num_res_blocks):
                self.down.append(nn.ModuleList([ResBlock(cur, out, emb_dim, dropout),
                                                AttentionBlock(out) if res in attn_res else nn.Identity()]))
                cur = out
                skip_chs.append(cur)
            if level < len(ch_mult) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skip_chs.append(cur)
                res = (res + 1) // 2

        self.mid1 = ResBlock(cur, cur, emb_dim, dropout)
        self.mid_attn = AttentionBlock(cur)
        self.mid2 = ResBlock(cur, cur, emb_dim, dropout)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            out = ch * mult
            for _ in range(num_res_blocks + 1):
                self.up.append(nn.ModuleList([ResBlock(cur + skip_chs.pop(), out, emb_dim, dropout),
                                              AttentionBlock(out) if res in attn_res else nn.Identity()]))
                cur = out
            if level > 0:
                res = res * 2
                self.up.append(nn.Conv2d(cur, cur, 3, padding=1))  # after nearest-neighbour upsampling
        self.norm_out = _norm(cur)
        self.conv_out = nn.Conv2d(cur, in_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int, y: torch.Tensor | None = None) -> torch.Tensor:
        B = x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        if t.numel() == 1:
            t = t.reshape(1).expand(B)
        emb = self.time(t)
        if self.label is not None:
            emb = emb + self.label(y, B, x.device)
        elif y is not None:
            raise ValueError("This UNet was built without num_classes, so it takes no labels: call model(x, t).")

        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](h, emb))
            else:
                h = layer(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](torch.cat([h, hs.pop()], dim=1), emb))
            else:
                skip_hw = hs[-1].shape[-2:]
                h = layer(F.interpolate(h, size=skip_hw, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))
