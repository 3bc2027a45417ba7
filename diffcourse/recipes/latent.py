r"""Recipes for chapter 8 (latent diffusion): ``python -m diffcourse train NAME`` for each.

=========================  ================================================================================
``latent-vae``             `Autoencoder`, 1×28×28 → 4×7×7, β = 10⁻³: sharp reconstructions, the latent of the LDMs
``latent-vae-c8``          the same with 8 latent channels (8×7×7, f = 4): the ablation of the LDM's cap
``latent-vae-beta1``       a σ-VAE (Rybkin et al. 2021): β = 1, dense 16-number latent, the decoder's σ set to its
                           optimum — the VAE baseline, sampled by decoding z ~ N(0, I)
``latent-ldm``             `LatentUNet` with a `PromptEncoder`, ε-prediction on the *scaled* latents of the shipped
                           ``latent-vae``, prompts dropped to "" with p = 0.1 (classifier-free guidance)
``latent-ldm-lsimple``     the same network trained *unconditionally* (always the empty prompt) with plain L_simple
                           and the pixel study's settings, on a ``latent-vae`` trained beside it: the latent side of
                           the matched-compute comparison with ``mnist-ddpm-lsimple``
``latent-gan``             `GAN`, a DCGAN trained the standard way (`diffcourse.adversarial.train_gan`)
=========================  ================================================================================

Every recipe but the GAN runs the course's one training loop (`diffcourse.training.train`) like the MNIST recipes
(`diffcourse.recipes.mnist`) and writes the same two files: ``out/train.pt`` (resumable state) and
``out/NAME.pt`` (EMA weights, config, settings, wall and CPU seconds), the file shipped in ``diffcourse/checkpoints/``.

The latent diffusion model never sees pixels while it trains: the training set is encoded once by the
frozen autoencoder (its posterior means and log-variances), and each batch draws
:math:`z = \mu + \sigma\varepsilon` (as Stable Diffusion does) and multiplies it by the scale factor
:math:`c = 1/\mathrm{std}(z)` measured on the training latents before training starts. The CPU seconds of that
encoding, and of training the autoencoder when it was trained beside the run, are recorded in the export: the
latent model's compute includes them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..data.mnist import load_mnist
from ..latent import latent_scale_factor, reparameterize
from ..models.autoencoder import Autoencoder, sigma_vae_loss, vae_loss
from ..models.text import all_prompts, prompt_digits, tokenize
from ..objectives import diffusion_loss
from ..schedules import make_schedule
from ..training import TrainResult, load_checkpoint, train
from .base import Recipe, build_model, export_path, lr_multiplier, run_settings, snapshot_steps, write_export

__all__ = ["LatentRecipe", "LATENT_RECIPES", "SHIPPED_LATENT", "train_latent_recipe", "encode_dataset",
           "prompt_batch_sampler", "load_autoencoder", "load_or_train_latent"]


@dataclass(frozen=True)
class LatentRecipe(Recipe):
    """A chapter-8 recipe: `diffcourse.recipes.base.Recipe` (kind ``"vae"``, ``"sigma-vae"``, ``"latent-diffusion"``
    or ``"gan"``) plus the VAE's KL weight and, for latent diffusion, the autoencoder whose latents it learns:
    the shipped one of that name, or (``autoencoder_from_run``) the one its recipe trained beside this run,
    ``OUT/../NAME/NAME.pt``, whose training CPU seconds are then charged to this run."""

    beta: float = 0.0                  # vae: the KL weight
    autoencoder: str = "latent-vae"    # latent-diffusion: an autoencoder recipe's name
    autoencoder_from_run: bool = False
    betas: tuple[float, float] = (0.9, 0.999)  # gan: Adam's (beta1, beta2) for both players


# Adam 2e-3 with 100 warm-up steps and a cosine decay, batches of 128, bfloat16 autocast (1 CPU thread each)
_LATENT = dict(batch_size=128, lr=2e-3, lr_schedule="cosine", warmup=100, bf16=True)
_LDM_NET = dict(latent_ch=4, ch=48, context_dim=64, text_layers=1)
# The matched-compute study: the pixel study's settings (mnist-ddpm-lsimple: batch 128, Adam 2e-3, 200 warm-up steps,
# cosine to 0, EMA 0.9995, bfloat16, plain L_simple, linear schedule T = 1000), unconditional; its steps are
# chosen so that autoencoder + encoding + diffusion CPU seconds equal the pixel run's (1 thread each): the pixel run
# took 3965 CPU s, the autoencoder 105.5 and the encoding 28.8, and a diffusion step 0.158 (measured over 3030 steps),
# so (3965 - 105.5 - 28.8) / 0.158 = 24 250 steps.
_LDM_STUDY = dict(batch_size=128, lr=2e-3, lr_schedule="cosine", warmup=200, ema_decay=0.9995, bf16=True,
                  p_uncond=1.0, min_snr_gamma=None, autoencoder_from_run=True)

LATENT_RECIPES: dict[str, LatentRecipe] = {r.name: r for r in [
    LatentRecipe("latent-vae", "vae", "Autoencoder", dict(latent_ch=4, ch=16), steps=800, beta=1e-3, **_LATENT,
                 description="KL autoencoder 1x28x28 -> 4x7x7, beta = 1e-3 (sharp reconstructions; the latent of latent-ldm)."),
    LatentRecipe("latent-vae-c8", "vae", "Autoencoder", dict(latent_ch=8, ch=16), steps=800, beta=1e-3, **_LATENT,
                 description="latent-vae with 8 latent channels (1x28x28 -> 8x7x7, f = 4): the autoencoder ablation."),
    # 12 000 steps x 128 = 26 passes, about 23 CPU minutes; snapshots every 2000 steps show whether it has converged
    LatentRecipe("latent-vae-beta1", "sigma-vae", "Autoencoder", dict(latent_dim=16, ch=16), steps=12000,
                 snapshot_every=2000, **_LATENT,
                 description="sigma-VAE (Rybkin et al. 2021): beta = 1, dense 16-number latent, Gaussian decoder "
                             "with its analytically optimal sigma; sampled by decoding z ~ N(0, I)."),
    LatentRecipe("latent-ldm", "latent-diffusion", "LatentUNet", dict(_LDM_NET), steps=2000, **_LATENT, p_uncond=0.1,
                 min_snr_gamma=5.0,
                 description="Latent diffusion on the scaled latents of latent-vae, prompts through cross-attention, "
                             "prompt dropout p=0.1 (CFG); linear schedule T=1000."),
    LatentRecipe("latent-ldm-lsimple", "latent-diffusion", "LatentUNet", dict(_LDM_NET), steps=24250,
                 snapshot_every=2000, **_LDM_STUDY,
                 description="latent-ldm's network trained unconditionally (empty prompt) with plain L_simple and "
                             "mnist-ddpm-lsimple's settings, on a latent-vae trained beside it (matched-compute study)."),
    # 12 000 steps x 128 = 26 passes, about 34 CPU minutes (1 thread); 400 steps already drew digit-like shapes
    LatentRecipe("latent-gan", "gan", "GAN", dict(z_dim=64, ch=48, discriminator=True), steps=12000, batch_size=128,
                 lr=2e-4, betas=(0.5, 0.999), ema_decay=0.999, snapshot_every=2000,
                 description="DCGAN (Radford et al. 2016): alternating D and G steps, two Adam optimisers "
                             "(lr 2e-4, betas 0.5, 0.999), EMA generator with recalibrated batch norm."),
]}
SHIPPED_LATENT = ("latent-vae", "latent-vae-beta1", "latent-ldm", "latent-gan")  # what the lesson loads


def load_autoencoder(source: str | os.PathLike | None, device: torch.device | str = "cpu") -> Autoencoder:
    """A frozen autoencoder: a shipped name (hash-checked, e.g. ``"latent-vae"``) or an exported ``.pt`` path."""
    from ..loading import load_model

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
    sizes = torch.tensor([len(q) for q in pools])
    starts = torch.cumsum(sizes, 0) - sizes
    flat = torch.cat(pools)

    def next_pairs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        which = torch.randint(0, len(prompts), (batch_size,), generator=g)
        u = torch.rand(batch_size, generator=g)
        idx = flat[starts[which] + (u * sizes[which]).long()]  # uniform within each prompt's pool, vectorised
        toks = tokens[which].clone()
        drop = torch.rand(batch_size, generator=g) < p_uncond
        if drop.any():
            idx[drop] = torch.randint(0, len(labels), (int(drop.sum()),), generator=g)
            toks[drop] = empty
        return idx, toks
    return next_pairs


def _autoencoder_source(recipe: LatentRecipe, out: Path | None, override: str | os.PathLike | None
                        ) -> tuple[str, float | None]:
    """Which autoencoder a latent-diffusion recipe reads, and its training CPU seconds when it was trained beside it."""
    if override is not None:
        return str(override), None
    if not recipe.autoencoder_from_run:
        return recipe.autoencoder, None
    if out is None:
        raise ValueError(f"{recipe.name} trains on the autoencoder trained beside it: give an output folder.")
    folder = Path(out).parent / recipe.autoencoder
    path = export_path(recipe.autoencoder, folder)
    if not path.exists():
        raise ValueError(f"{recipe.name} needs {path}: first run `python -m diffcourse train {recipe.autoencoder} "
                         f"--out {folder}`.")
    return str(path), float(load_checkpoint(folder / "train.pt").get("cpu_seconds", float("nan")))


def _image_batches(x: torch.Tensor, batch_size: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda g: x[torch.randint(0, len(x), (batch_size,), generator=g)]


def _latent_data_and_loss(recipe: LatentRecipe, model: nn.Module, device: torch.device, autoencoder: str,
                          x_train: torch.Tensor, y_train: torch.Tensor) -> tuple[Callable, Callable, dict[str, Any]]:
    """Encode the training set once, measure the scale factor; batches of scaled latents (and prompts)."""
    ae = load_autoencoder(autoencoder, device)
    t0, c0 = time.perf_counter(), time.process_time()
    mean, logvar = encode_dataset(ae, x_train, device=device)
    z = reparameterize(mean, logvar, torch.randn(mean.shape, generator=torch.Generator().manual_seed(recipe.seed)))
    scale = latent_scale_factor(z)
    notes = {"scale_factor": scale, "encode_seconds": round(time.perf_counter() - t0, 1),
             "encode_cpu_seconds": round(time.process_time() - c0, 1), "autoencoder": autoencoder}
    model.scale_factor = model.config["scale_factor"] = scale
    schedule = make_schedule(recipe.schedule, recipe.T)
    unconditional = recipe.p_uncond >= 1.0  # every prompt dropped: no prompt sampling at all (the empty prompt)
    pairs = None if unconditional else prompt_batch_sampler(y_train, recipe.batch_size, recipe.p_uncond)

    def next_batch(g):
        if unconditional:
            idx, toks = torch.randint(0, len(mean), (recipe.batch_size,), generator=g), None
        else:
            idx, toks = pairs(g)
        z0 = scale * reparameterize(mean[idx], logvar[idx], torch.randn(mean[idx].shape, generator=g))
        return z0 if toks is None else (z0, toks)

    def loss(m, batch, g):
        z0, toks = (batch, None) if torch.is_tensor(batch) else batch
        return diffusion_loss(m, schedule, z0, g, y=toks, min_snr_gamma=recipe.min_snr_gamma)
    return next_batch, loss, notes


def _data_and_loss(recipe: LatentRecipe, model: nn.Module, device: torch.device,
                   autoencoder: str | None) -> tuple[Callable, Callable, dict[str, Any]]:
    """``(next_batch, loss_fn, notes)`` for ``recipe``; notes go into the export (e.g. the scale factor)."""
    x_train, y_train = load_mnist("train")
    if recipe.kind == "vae":
        return (_image_batches(x_train, recipe.batch_size),
                lambda m, x, g: vae_loss(m, x, recipe.beta, g)[0], {})
    if recipe.kind == "sigma-vae":
        return _image_batches(x_train, recipe.batch_size), lambda m, x, g: sigma_vae_loss(m, x, g)[0], {}
    if recipe.kind == "latent-diffusion":
        return _latent_data_and_loss(recipe, model, device, autoencoder, x_train, y_train)
    raise ValueError(f"Unknown recipe kind {recipe.kind!r}.")


def _train_gan_recipe(recipe: LatentRecipe, steps: int, out_dir: Path | None, settings: dict[str, Any], *,
                      resume: bool, device: torch.device, progress: bool, checkpoint_every_s: float,
                      command: str | None) -> tuple[TrainResult, Path | None]:
    """The GAN recipe: `diffcourse.adversarial.train_gan`; exports the averaged generator alone."""
    from ..adversarial import sampling_generator, train_gan

    torch.manual_seed(recipe.seed)  # weight initialisation
    gan = build_model(recipe.model, recipe.model_kwargs).to(device)
    x_train = load_mnist("train")[0]
    run = train_gan(gan, lambda g: _image_batches(x_train, recipe.batch_size)(g).to(device), steps, lr=recipe.lr,
                    betas=tuple(recipe.betas), ema_decay=recipe.ema_decay, seed=recipe.seed,
                    checkpoint=out_dir / "train.pt" if out_dir is not None else None,
                    checkpoint_every_s=checkpoint_every_s, resume=resume, progress=progress, desc=recipe.name,
                    snapshot_steps=snapshot_steps(recipe, steps), extra={"recipe": settings})
    sampler = sampling_generator(run.ema)
    result = TrainResult(model=gan, ema_model=sampler, losses=[d + g for d, g in run.losses], steps=steps,
                         seconds=run.seconds)
    if out_dir is None:
        return result, None
    return result, write_export(export_path(recipe.name, out_dir), sampler, sampler, recipe, settings, steps=steps,
                                seconds=run.seconds, cpu_seconds=run.cpu_seconds, device=device, command=command)


def train_latent_recipe(name: str, out: str | os.PathLike | None = None, *, steps: int | None = None,
                        resume: bool = False, device: torch.device | str = "cpu", progress: bool = True,
                        checkpoint_every_s: float = 120.0, command: str | None = None,
                        autoencoder: str | os.PathLike | None = None) -> tuple[TrainResult, Path | None]:
    """Run chapter-8 recipe ``name`` (see `LATENT_RECIPES`); the contract of `diffcourse.recipes.registry.train_recipe`.

    ``autoencoder`` (latent diffusion only) replaces the recipe's autoencoder by another name or an
    exported ``.pt`` file (e.g. one just trained with ``TRAIN = True``).
    """
    if name not in LATENT_RECIPES:
        raise ValueError(f"Unknown recipe {name!r}. Choose one of: {', '.join(LATENT_RECIPES)}.")
    recipe = LATENT_RECIPES[name]
    device = torch.device(device)
    steps = int(steps if steps is not None else recipe.steps)
    out_dir = Path(out) if out is not None else None
    settings = run_settings(recipe, steps)
    if recipe.kind == "gan":
        return _train_gan_recipe(recipe, steps, out_dir, settings, resume=resume, device=device, progress=progress,
                                 checkpoint_every_s=checkpoint_every_s, command=command)
    torch.manual_seed(recipe.seed)  # weight initialisation
    model = build_model(recipe.model, recipe.model_kwargs)
    diffusion = recipe.kind == "latent-diffusion"
    source, ae_cpu = _autoencoder_source(recipe, out_dir, autoencoder) if diffusion else (None, None)
    next_batch, loss_fn, notes = _data_and_loss(recipe, model, device, source)
    settings.update(notes, **({"autoencoder_cpu_seconds": round(ae_cpu, 1)} if ae_cpu is not None else {}))
    ckpt = out_dir / "train.pt" if out_dir is not None else None
    result = train(model, loss_fn, next_batch, steps, lr=recipe.lr, ema_decay=recipe.ema_decay, seed=recipe.seed,
                   checkpoint=ckpt, checkpoint_every_s=checkpoint_every_s, resume=resume, device=device,
                   progress=progress, desc=name, extra={"recipe": settings}, lr_lambda=lr_multiplier(recipe, steps),
                   autocast=torch.bfloat16 if recipe.bf16 else None, snapshot_steps=snapshot_steps(recipe, steps))
    if out_dir is None:
        return result, None
    cpu = float(load_checkpoint(ckpt)["cpu_seconds"])
    return result, write_export(export_path(name, out_dir), result.ema_model, model, recipe, settings, steps=steps,
                                seconds=result.seconds, cpu_seconds=cpu, device=device, command=command)


def load_or_train_latent(train: bool = False, device: torch.device | str | None = None,
                         out: str | os.PathLike = "runs") -> dict[str, nn.Module]:
    """Chapter 8's four shipped networks (`SHIPPED_LATENT`) by recipe name: the shipped checkpoints (hash-checked),
    or with ``train=True`` each trained here by its recipe into ``out/NAME`` (resumable), the latent diffusion model
    on the autoencoder just trained. This is what the lesson's ``TRAIN`` flag switches."""
    from ..loading import load_model, load_pretrained

    if not train:
        return {name: load_pretrained(name, device) for name in SHIPPED_LATENT}
    models = {}
    for name in SHIPPED_LATENT:
        recipe = LATENT_RECIPES[name]
        ae = Path(out) / recipe.autoencoder / f"{recipe.autoencoder}.pt" if recipe.kind == "latent-diffusion" else None
        _, path = train_latent_recipe(name, Path(out) / name, resume=True, device=device or "cpu", autoencoder=ae,
                                      command="diffcourse.recipes.latent.load_or_train_latent(train=True)")
        models[name] = load_model(str(path), device or "cpu")[0]
    return models
