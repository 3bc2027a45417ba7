r"""Recipes for chapter 8 (latent diffusion): ``python -m diffcourse train NAME`` for each.

=====================  ====================================================================================
``latent-vae``         `Autoencoder`, 1×28×28 → 4×7×7, β = 10⁻³: sharp reconstructions, the latent of the LDM
``latent-vae-beta1``   the same network with β = 1: a proper VAE (negative ELBO), sampled by decoding z ~ N(0, I)
``latent-ldm``         `LatentUNet` with a `PromptEncoder`, ε-prediction on the *scaled* latents of the shipped
                       ``latent-vae``, prompts dropped to "" with p = 0.1 (classifier-free guidance)
``latent-gan``         `GAN` (DCGAN-style), non-saturating loss, both players in one optimiser
=====================  ====================================================================================

Every recipe runs the course's one training loop (`diffcourse.training.train`) like the MNIST recipes
(`diffcourse.recipes.mnist`) and writes the same two files: ``out/train.pt`` (resumable state) and
``out/NAME.pt`` (EMA weights, config, settings, seconds), the file shipped in ``diffcourse/checkpoints/``.

The latent diffusion model never sees pixels while it trains: the training set is encoded once by the
frozen autoencoder (its posterior means and log-variances), and each batch draws
:math:`z = \mu + \sigma\varepsilon` (as Stable Diffusion does) and multiplies it by the scale factor
:math:`c = 1/\mathrm{std}(z)` measured on the training latents before training starts.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..data.mnist import load_mnist
from ..latent import latent_scale_factor, reparameterize
from ..models.autoencoder import Autoencoder, vae_loss
from ..models.gan import gan_loss
from ..models.text import all_prompts, prompt_digits, tokenize
from ..objectives import diffusion_loss
from ..schedules import make_schedule
from ..training import TrainResult, train
from .mnist import Recipe, build_model, export_path, lr_multiplier

__all__ = ["LatentRecipe", "LATENT_RECIPES", "train_latent_recipe", "encode_dataset", "prompt_batch_sampler",
           "load_autoencoder", "load_or_train_latent"]


@dataclass(frozen=True)
class LatentRecipe(Recipe):
    """A chapter-8 recipe: `diffcourse.recipes.mnist.Recipe` (kind ``"vae"``, ``"latent-diffusion"`` or ``"gan"``)
    plus the VAE's KL weight and, for latent diffusion, the shipped autoencoder whose latents it learns."""

    beta: float = 0.0                # vae: the KL weight
    autoencoder: str = "latent-vae"  # latent-diffusion: a shipped autoencoder's name


# Adam 2e-3 with 100 warm-up steps and a cosine decay, batches of 128, bfloat16 autocast (1 CPU thread each)
_LATENT = dict(batch_size=128, lr=2e-3, lr_schedule="cosine", warmup=100, bf16=True)

LATENT_RECIPES: dict[str, LatentRecipe] = {r.name: r for r in [
    LatentRecipe("latent-vae", "vae", "Autoencoder", dict(latent_ch=4, ch=16), steps=800, beta=1e-3, **_LATENT,
                 description="KL autoencoder 1x28x28 -> 4x7x7, beta = 1e-3 (sharp reconstructions; the latent of latent-ldm)."),
    LatentRecipe("latent-vae-beta1", "vae", "Autoencoder", dict(latent_ch=4, ch=16), steps=800, beta=1.0, **_LATENT,
                 description="The same autoencoder with beta = 1: a VAE (negative ELBO) sampled by decoding z ~ N(0, I)."),
    LatentRecipe("latent-ldm", "latent-diffusion", "LatentUNet", dict(latent_ch=4, ch=48, context_dim=64, text_layers=1),
                 steps=2000, **_LATENT, p_uncond=0.1, min_snr_gamma=5.0,
                 description="Latent diffusion on the scaled latents of latent-vae, prompts through cross-attention, "
                             "prompt dropout p=0.1 (CFG); linear schedule T=1000."),
    LatentRecipe("latent-gan", "gan", "GAN", dict(z_dim=64, ch=32), steps=2000, batch_size=64, lr=2e-4,
                 ema_decay=0.999, warmup=0, lr_schedule="constant", bf16=False,
                 description="DCGAN-style GAN, non-saturating loss, simultaneous updates in the course's one loop."),
]}


def load_autoencoder(source: str | os.PathLike | None, device: torch.device | str = "cpu") -> Autoencoder:
    """A frozen autoencoder: a shipped name (hash-checked, e.g. ``"latent-vae"``) or an exported ``.pt`` path."""
    from ..pretrained import load_model

    model, _ = load_model(str(source), device)
    if not isinstance(model, Autoencoder):
        raise ValueError(f"{source!r} is a {type(model).__name__}, not an Autoencoder.")
    return model


@torch.no_grad()
def encode_dataset(autoencoder: Autoencoder, x: torch.Tensor, batch_size: int = 1000,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    r"""The posterior :math:`(\mu, \log\sigma^2)` of every image in ``x`` (CPU float32 tensors ``(N, C, 7, 7)``)."""
    means, logvars = [], []
    for i in range(0, len(x), batch_size):
        m, lv = autoencoder.encode(x[i:i + batch_size].to(device))
        means.append(m.float().cpu())
        logvars.append(lv.float().cpu())
    return torch.cat(means), torch.cat(logvars)


def prompt_batch_sampler(labels: torch.Tensor, batch_size: int, p_uncond: float
                         ) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """``next(generator) -> (indices, tokens)``: a batch of (image index, prompt) training pairs.

    Each row draws one of the 50 prompts (`all_prompts`) uniformly, then an image uniformly among those
    whose label the prompt allows (`prompt_digits`), so p(image | "an odd digit") is uniform over the odd
    digits. With probability ``p_uncond`` a row instead gets the empty prompt "" and an image drawn from
    the whole training set, so the unconditional model learns the data distribution itself.
    """
    prompts = all_prompts()
    tokens = tokenize(prompts)
    empty = tokenize("")[0]
    pools = [torch.nonzero(torch.isin(labels, torch.tensor(prompt_digits(p)))).flatten() for p in prompts]

    def next_pairs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        which = torch.randint(0, len(prompts), (batch_size,), generator=g)
        u = torch.rand(batch_size, generator=g)
        idx = torch.stack([pools[k][int(u[i] * len(pools[k]))] for i, k in enumerate(which.tolist())])
        toks = tokens[which].clone()
        drop = torch.rand(batch_size, generator=g) < p_uncond
        if drop.any():
            idx[drop] = torch.randint(0, len(labels), (int(drop.sum()),), generator=g)
            toks[drop] = empty
        return idx, toks
    return next_pairs


def _data_and_loss(recipe: LatentRecipe, model: nn.Module, device: torch.device,
                   autoencoder: str | os.PathLike | None) -> tuple[Callable, Callable, dict[str, Any]]:
    """``(next_batch, loss_fn, notes)`` for ``recipe``; notes go into the export (e.g. the scale factor)."""
    x_train, y_train = load_mnist("train")
    n = len(x_train)
    if recipe.kind in ("vae", "gan"):
        def next_batch(g):
            return x_train[torch.randint(0, n, (recipe.batch_size,), generator=g)]
        if recipe.kind == "vae":
            return next_batch, lambda m, x, g: vae_loss(m, x, recipe.beta, g)[0], {}
        return next_batch, lambda m, x, g: gan_loss(m, x, g), {}
    if recipe.kind != "latent-diffusion":
        raise ValueError(f"Unknown recipe kind {recipe.kind!r}.")
    ae = load_autoencoder(autoencoder or recipe.autoencoder, device)
    t0 = time.perf_counter()
    mean, logvar = encode_dataset(ae, x_train, device=device)
    encode_s = time.perf_counter() - t0
    z = reparameterize(mean, logvar, torch.randn(mean.shape, generator=torch.Generator().manual_seed(recipe.seed)))
    scale = latent_scale_factor(z)
    model.scale_factor = model.config["scale_factor"] = scale
    schedule = make_schedule(recipe.schedule, recipe.T)
    pairs = prompt_batch_sampler(y_train, recipe.batch_size, recipe.p_uncond)

    def next_batch(g):
        idx, toks = pairs(g)
        eps = torch.randn(mean[idx].shape, generator=g)
        return scale * reparameterize(mean[idx], logvar[idx], eps), toks

    def loss(m, batch, g):
        z0, toks = batch
        return diffusion_loss(m, schedule, z0, g, y=toks, min_snr_gamma=recipe.min_snr_gamma)
    return next_batch, loss, {"scale_factor": scale, "encode_seconds": round(encode_s, 1),
                              "autoencoder": str(autoencoder or recipe.autoencoder)}


def train_latent_recipe(name: str, out: str | os.PathLike | None = None, *, steps: int | None = None,
                        resume: bool = False, device: torch.device | str = "cpu", progress: bool = True,
                        checkpoint_every_s: float = 120.0, command: str | None = None,
                        autoencoder: str | os.PathLike | None = None) -> tuple[TrainResult, Path | None]:
    """Run chapter-8 recipe ``name`` (see `LATENT_RECIPES`); same contract as `diffcourse.recipes.mnist.train_recipe`.

    ``autoencoder`` (latent diffusion only) replaces the recipe's shipped autoencoder by another name or an
    exported ``.pt`` file (e.g. one just trained with ``TRAIN = True``).
    """
    if name not in LATENT_RECIPES:
        raise ValueError(f"Unknown recipe {name!r}. Choose one of: {', '.join(LATENT_RECIPES)}.")
    recipe = LATENT_RECIPES[name]
    device = torch.device(device)
    steps = int(steps if steps is not None else recipe.steps)
    torch.manual_seed(recipe.seed)  # weight initialisation
    model = build_model(recipe.model, recipe.model_kwargs)
    next_batch, loss_fn, notes = _data_and_loss(recipe, model, device, autoencoder)
    out_dir = Path(out) if out is not None else None
    settings = {k: v for k, v in asdict(recipe).items() if k != "model_kwargs"}
    settings.update(steps=steps, **notes)
    result = train(model, loss_fn, next_batch, steps, lr=recipe.lr, ema_decay=recipe.ema_decay, seed=recipe.seed,
                   checkpoint=out_dir / "train.pt" if out_dir is not None else None,
                   checkpoint_every_s=checkpoint_every_s, resume=resume, device=device, progress=progress, desc=name,
                   extra={"recipe": settings}, lr_lambda=lr_multiplier(recipe, steps),
                   autocast=torch.bfloat16 if recipe.bf16 else None)
    if out_dir is None:
        return result, None
    export = {"state_dict": {k: v.detach().cpu() for k, v in result.ema_model.state_dict().items()},
              "config": dict(model.config), "model": recipe.model, "recipe": name, "settings": settings,
              "steps": steps, "seconds": round(result.seconds, 1), "device": str(device), "command": command or ""}
    path = export_path(name, out_dir)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(export, tmp)
    tmp.replace(path)
    return result, path


def load_or_train_latent(train: bool = False, device: torch.device | str | None = None,
                         out: str | os.PathLike = "runs") -> dict[str, nn.Module]:
    """Chapter 8's four networks by recipe name: the shipped checkpoints (hash-checked), or with ``train=True``
    each trained here by its recipe into ``out/NAME`` (resumable), the latent diffusion model on the
    autoencoder just trained. This is what the lesson's ``TRAIN`` flag switches."""
    from ..pretrained import load_model, load_pretrained

    if not train:
        return {name: load_pretrained(name, device) for name in LATENT_RECIPES}
    models = {}
    for name, recipe in LATENT_RECIPES.items():
        ae = Path(out) / recipe.autoencoder / f"{recipe.autoencoder}.pt" if recipe.kind == "latent-diffusion" else None
        _, path = train_latent_recipe(name, Path(out) / name, resume=True, device=device or "cpu", autoencoder=ae,
                                      command="diffcourse.recipes.latent.load_or_train_latent(train=True)")
        models[name] = load_model(str(path), device or "cpu")[0]
    return models
