r"""A tiny prompt encoder for chapter 8: words of short prompts such as "seven", "an odd digit",
"a digit greater than five" → one vector per token, for the latent network's cross-attention.

Stable Diffusion reads its prompt with a frozen CLIP text transformer (77 tokens, 12 layers). Our
prompts come from a closed little language, so the encoder is small and trained *with* the
diffusion model:

* **a fixed vocabulary** (`VOCAB`, 21 words): every prompt is split at spaces and each word looked
  up; an unknown word is an error that lists the vocabulary. A ``<start>`` token opens every prompt,
  so even the empty prompt ``""`` (the *unconditional* prompt of classifier-free guidance, as in
  Stable Diffusion) has one real token to attend to; shorter prompts are padded with ``<pad>`` and a
  mask marks the real tokens (``True``).
* **learned embeddings** of each word plus a learned embedding of its position;
* **one self-attention layer** (pre-norm, with an MLP): in "five" and in "greater than five" the
  word *five* means different things. Embeddings alone give it one vector in both; after one layer
  of self-attention each token's vector depends on the words around it, so the image's
  cross-attention can read "threshold five" from a single token.

`prompt_digits` gives the meaning of a prompt — the digits it allows — which makes the training
pairs (`diffcourse.recipes.latent`) and scores samples (is the digit drawn one the prompt allows?).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["VOCAB", "NUMBER_WORDS", "MAX_TOKENS", "tokenize", "prompt_digits", "all_prompts", "PromptEncoder"]

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOCAB = ("<pad>", "<start>", "a", "an", "the", "digit", "odd", "even", "greater", "less", "than") + NUMBER_WORDS
PAD, START = 0, 1
MAX_TOKENS = 6  # "<start> a digit greater than five"
_INDEX = {w: i for i, w in enumerate(VOCAB)}


def _words(prompt: str) -> list[str]:
    words = prompt.lower().split()
    unknown = [w for w in words if w not in _INDEX or w.startswith("<")]
    if unknown:
        raise ValueError(f"Unknown word(s) {unknown} in prompt {prompt!r}. The vocabulary is: "
                         f"{', '.join(w for w in VOCAB if not w.startswith('<'))}.")
    if len(words) + 1 > MAX_TOKENS:
        raise ValueError(f"Prompt {prompt!r} has {len(words)} words; at most {MAX_TOKENS - 1} fit.")
    return words


def tokenize(prompts: str | Sequence[str]) -> torch.Tensor:
    """Token ids ``(B, MAX_TOKENS)`` of one prompt or a list: ``<start>``, the words, then ``<pad>`` (0).

    The padding mask is ``tokens != 0`` (`PromptEncoder` computes it).
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    ids = torch.full((len(prompts), MAX_TOKENS), PAD, dtype=torch.long)
    for i, p in enumerate(prompts):
        row = [START] + [_INDEX[w] for w in _words(p)]
        ids[i, :len(row)] = torch.tensor(row)
    return ids


def prompt_digits(prompt: str) -> tuple[int, ...]:
    """The digits a prompt allows: "seven" → (7,), "an odd digit" → (1, 3, 5, 7, 9),
    "a digit greater than five" → (6, 7, 8, 9), "" → all ten (no condition)."""
    words = _words(prompt)
    numbers = [NUMBER_WORDS.index(w) for w in words if w in NUMBER_WORDS]
    if "odd" in words or "even" in words:
        return tuple(d for d in range(10) if d % 2 == (1 if "odd" in words else 0))
    if "greater" in words or "less" in words:
        if len(numbers) != 1 or "than" not in words:
            raise ValueError(f"Say 'a digit greater than N' or 'a digit less than N', got {prompt!r}.")
        n = numbers[0]
        allowed = tuple(d for d in range(10) if (d > n if "greater" in words else d < n))
        if not allowed:
            raise ValueError(f"No digit is {'greater' if 'greater' in words else 'less'} than {n}: {prompt!r}.")
        return allowed
    if len(numbers) > 1:
        raise ValueError(f"Prompt {prompt!r} names {len(numbers)} digits; name one.")
    return (numbers[0],) if numbers else tuple(range(10))


def all_prompts() -> list[str]:
    """The 50 training prompts: each digit three ways ("seven", "a seven", "the digit seven"), "an odd digit",
    "an even digit", "a digit greater than N" (N = 0 … 8) and "a digit less than N" (N = 1 … 9)."""
    out = []
    for w in NUMBER_WORDS:
        out += [w, ("an " if w == "eight" else "a ") + w, "the digit " + w]
    out += ["an odd digit", "an even digit"]
    out += [f"a digit greater than {NUMBER_WORDS[n]}" for n in range(9)]
    out += [f"a digit less than {NUMBER_WORDS[n]}" for n in range(1, 10)]
    return out


class PromptEncoder(nn.Module):
    r"""Token ids ``(B, L)`` → token vectors ``(B, L, dim)`` and the padding mask ``(B, L)`` (True = real token).

    .. math:: h = E[\text{tok}] + P[\text{pos}],\qquad h \leftarrow h + \mathrm{Attn}(\mathrm{LN}(h)),\qquad
              h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h)),\qquad \text{out} = \mathrm{LN}(h)

    with the self-attention masked so that no token attends to padding (``layers`` such blocks).
    """

    def __init__(self, dim: int = 64, layers: int = 1, heads: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.tokens = nn.Embedding(len(VOCAB), dim)
        self.positions = nn.Parameter(torch.randn(MAX_TOKENS, dim) * 0.02)
        self.blocks = nn.ModuleList([nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu",
                                                                batch_first=True, norm_first=True)
                                     for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.as_tensor(tokens).long()
        if tokens.ndim != 2 or tokens.shape[1] > MAX_TOKENS:
            raise ValueError(f"Expected token ids of shape (B, L <= {MAX_TOKENS}) from tokenize(), got {tuple(tokens.shape)}.")
        mask = tokens != PAD
        if not bool(mask.any(1).all()):
            raise ValueError("A prompt of only padding: tokenize() always starts with <start>; use tokenize('') for no prompt.")
        h = self.tokens(tokens) + self.positions[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h, src_key_padding_mask=~mask)
        return self.norm(h), mask

    def extra_repr(self) -> str:
        return f"vocabulary {len(VOCAB)} words, {MAX_TOKENS} tokens"
