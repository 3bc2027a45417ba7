"""Chapter 8's networks: the autoencoder, the prompt encoder, the latent U-Net with cross-attention, the GAN,
their recipes (a short training run each), checkpoint round trips and the latent-trajectory widget."""
import pytest
import torch

from diffcourse.latent import cross_attention, gaussian_kl
from diffcourse.models import GAN, Autoencoder, LatentUNet, PromptEncoder
from diffcourse.models.autoencoder import sigma_vae_loss, vae_loss
from diffcourse.models.gan import discriminator_loss, generator_loss
from diffcourse.models.latent_unet import CrossAttentionBlock, prompt_eps_fn, sample_latent_digits
from diffcourse.models.text import MAX_TOKENS, VOCAB, all_prompts, prompt_digits, tokenize
from diffcourse.schedules import make_schedule


def test_tokenize_pads_and_starts_every_prompt():
    t = tokenize(["seven", "a digit greater than five", ""])
    assert t.shape == (3, MAX_TOKENS) and t.dtype == torch.long
    assert (t[:, 0] == VOCAB.index("<start>")).all()
    assert (t != 0).sum(1).tolist() == [2, 6, 1]
    assert tokenize("Seven").equal(tokenize("seven"))
    with pytest.raises(ValueError, match="vocabulary"):
        tokenize("a purple digit")
    with pytest.raises(ValueError, match="at most"):
        tokenize("a digit greater than five seven")


def test_prompt_meanings():
    assert prompt_digits("seven") == (7,) and prompt_digits("an eight") == (8,)
    assert prompt_digits("an odd digit") == (1, 3, 5, 7, 9)
    assert prompt_digits("a digit greater than five") == (6, 7, 8, 9)
    assert prompt_digits("a digit less than two") == (0, 1)
    assert prompt_digits("") == tuple(range(10))
    with pytest.raises(ValueError):
        prompt_digits("a digit greater than nine")
    prompts = all_prompts()
    assert len(prompts) == len(set(prompts)) == 50 and all(prompt_digits(p) for p in prompts)


def test_prompt_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = PromptEncoder(dim=16).eval()
    t = tokenize(["seven"])
    h, mask = enc(t)
    assert h.shape == (1, MAX_TOKENS, 16) and mask.tolist() == [[True, True] + [False] * (MAX_TOKENS - 2)]
    t2 = t.clone()
    t2[0, 2] = VOCAB.index("odd")  # one more real word ...
    h2, _ = enc(t2)
    assert not torch.allclose(h[0, :2], h2[0, :2]), "... changes the other tokens' vectors through self-attention"
    with pytest.raises(ValueError, match="only padding"):
        enc(torch.zeros(1, MAX_TOKENS, dtype=torch.long))


def test_autoencoder_shapes_and_loss():
    torch.manual_seed(0)
    ae = Autoencoder(latent_ch=4, ch=8)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (3, 4, 7, 7)
    recon, m2, _ = ae(x)
    assert recon.shape == x.shape and recon.abs().max() <= 1 and torch.equal(m2, mean)
    loss, rec, kl = vae_loss(ae, x, 0.5, torch.Generator().manual_seed(0))
    assert torch.isclose(kl, gaussian_kl(mean, logvar).mean(), rtol=1e-5)
    assert torch.isclose(loss, rec + 0.5 * kl, rtol=1e-5)
    with pytest.raises(ValueError, match="28, 28"):
        ae.encode(torch.zeros(2, 1, 14, 14))


def test_cross_attention_block_masks_padding_and_keeps_maps():
    torch.manual_seed(0)
    block = CrossAttentionBlock(8, 16)
    torch.nn.init.normal_(block.proj.weight)  # a fresh block is the identity: make it do something
    block.keep_attention = True
    x = torch.randn(2, 8, 7, 7)
    ctx = torch.randn(2, MAX_TOKENS, 16)
    mask = tokenize(["seven", "a digit less than two"]) != 0
    out = block(x, ctx, mask)
    attn = block.last_attention
    assert out.shape == x.shape and attn.shape == (2, 49, MAX_TOKENS)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 49))
    assert (attn[0, :, 2:] == 0).all() and (attn[1, :, :5] > 0).all()
    ctx2 = ctx.clone()
    ctx2[0, 2:] = 100.0  # changing padding tokens changes nothing
    assert torch.allclose(block(x, ctx2, mask)[0], out[0])
    h = block.norm(x).flatten(2).transpose(1, 2)
    ref, _ = cross_attention(h, ctx, block.to_q.weight.T, block.to_k.weight.T, block.to_v.weight.T, mask)
    assert torch.allclose(out, x + block.proj(ref).transpose(1, 2).reshape(2, 8, 7, 7), atol=1e-5)


def test_latent_unet_prompts_and_guidance():
    torch.manual_seed(0)
    net = LatentUNet(latent_ch=4, ch=16, context_dim=16).eval()
    for p in net.parameters():  # zero-initialised outputs would hide the prompt: perturb every weight
        p.data.add_(0.05 * torch.randn_like(p))
    z, t = torch.randn(3, 4, 7, 7), torch.tensor([0, 500, 999])
    toks = tokenize(["seven", "an odd digit", "two"])
    with torch.no_grad():
        eps_c, eps_u = net(z, t, toks), net(z, t)
        assert eps_c.shape == z.shape and not torch.allclose(eps_c, eps_u)
        assert torch.allclose(net(z, t, tokenize("")), eps_u)
        guided = prompt_eps_fn(net, toks, 3.0)(z, t)
        assert torch.allclose(guided, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5)
        assert torch.allclose(prompt_eps_fn(net, toks, 1.0)(z, t), eps_c)
        ae = Autoencoder(4, 8).eval()
        imgs = sample_latent_digits(net, ae, make_schedule("linear", 50), ["seven", ""], w=2.0, steps=3,
                                    generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (2, 1, 28, 28) and torch.isfinite(imgs).all()


def test_dense_autoencoder_and_sigma_vae_loss():
    """The σ-VAE's loss is the negative ELBO with σ at its optimum, the root mean squared error of the batch."""
    torch.manual_seed(0)
    ae = Autoencoder(ch=8, latent_dim=6)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == (5, 6) and ae.latent_shape == (6,)
    assert ae.decode(torch.randn(3, 6)).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="6"):
        ae.decode(torch.randn(3, 4, 7, 7))
    loss, rec, kl, log_sigma = sigma_vae_loss(ae, x, torch.Generator().manual_seed(0))
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(0))
    err = (ae.decode(mean + (0.5 * logvar).exp() * eps) - x).pow(2)
    sigma2 = err.mean()
    assert torch.isclose(log_sigma.exp() ** 2, sigma2, rtol=1e-5)
    nll = err.flatten(1).sum(1) / (2 * sigma2) + 784 * 0.5 * torch.log(2 * torch.pi * sigma2)
    assert torch.isclose(loss, (nll + gaussian_kl(mean, logvar)).mean(), rtol=1e-5)
    assert torch.isclose(rec, err.flatten(1).sum(1).mean(), rtol=1e-5) and kl > 0
    # at σ* the negative ELBO is lower than with any other fixed σ
    for s in (0.5 * sigma2.sqrt(), 2 * sigma2.sqrt()):
        other = err.flatten(1).sum(1) / (2 * s ** 2) + 784 * torch.log(s * (2 * torch.pi) ** 0.5)
        assert (other + gaussian_kl(mean, logvar)).mean() > loss


def test_gan_players_get_their_own_losses():
    torch.manual_seed(0)
    gan = GAN(z_dim=8, ch=8, discriminator=True)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    fake = gan.generator(torch.randn(4, 8))
    discriminator_loss(gan, real, fake).backward()
    assert all(p.grad is None for p in gan.generator.parameters()), "L_D must not reach the generator"
    assert all(p.grad is not None for p in gan.discriminator.parameters())
    gan.zero_grad(set_to_none=True)
    fake = gan.generator(torch.randn(4, 8))
    generator_loss(gan, fake).backward()
    d = gan.discriminator(fake.detach())
    assert torch.isclose(generator_loss(gan, fake), torch.nn.functional.softplus(-d).mean())
    assert all(p.grad is not None for p in gan.generator.parameters())
    assert gan.sample(5, torch.Generator().manual_seed(1)).shape == (5, 1, 28, 28)
    shipped = GAN(z_dim=8, ch=8, discriminator=False)
    assert shipped.discriminator is None and shipped.sample(2).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="discriminator=False"):
        discriminator_loss(shipped, real, fake)


def test_train_gan_alternates_two_adam_players_and_resumes_exactly(tmp_path):
    """Two optimisers with DCGAN's betas, no clipping; an interrupted run ends with the weights of an uninterrupted one;
    the sampling generator's batch-norm statistics are measured on its own (averaged) weights."""
    from diffcourse.adversarial import recalibrate_batchnorm, sampling_generator, train_gan

    data = torch.rand(64, 1, 28, 28) * 2 - 1
    batches = lambda g: data[torch.randint(0, 64, (8,), generator=g)]  # noqa: E731

    def fresh():
        torch.manual_seed(0)
        return GAN(z_dim=8, ch=8, discriminator=True)
    full = train_gan(fresh(), batches, 6, progress=False)
    assert full.opt_g.defaults["betas"] == (0.5, 0.999) and full.opt_d.defaults["betas"] == (0.5, 0.999)
    assert {id(p) for g in full.opt_g.param_groups for p in g["params"]} == {id(p) for p in full.gan.generator.parameters()}
    assert len(full.losses) == 6 and full.cpu_seconds > 0
    train_gan(fresh(), batches, 3, checkpoint=tmp_path / "train.pt", progress=False)
    resumed = train_gan(fresh(), batches, 6, checkpoint=tmp_path / "train.pt", resume=True, progress=False,
                        snapshot_steps=(5,))
    for a, b in zip(full.gan.state_dict().values(), resumed.gan.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "snapshots" / "step000005.pt").exists()
    gen = sampling_generator(resumed.ema)
    bn = [m for m in gen.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    live = [m for m in resumed.ema.model.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    assert gen.discriminator is None and not gen.training and not torch.allclose(bn.running_mean, live.running_mean)
    again = recalibrate_batchnorm(sampling_generator(resumed.ema))
    assert torch.allclose(again.generator[2].running_var, gen.generator[2].running_var)


@pytest.fixture
def few_digits(monkeypatch):
    """The recipes read 600 training digits instead of 60 000 (encoding them all would dominate a smoke test)."""
    import diffcourse.recipes.latent as recipes
    from diffcourse.data.mnist import load_mnist

    x, y = load_mnist("train")
    monkeypatch.setattr(recipes, "load_mnist", lambda split="train": (x[:600], y[:600]))


@pytest.mark.parametrize("name", ["latent-vae", "latent-vae-beta1", "latent-gan"])
def test_recipe_smoke_and_checkpoint_round_trip(name, tmp_path, few_digits):
    from diffcourse.pretrained import load_model
    from diffcourse.recipes.registry import train_recipe

    torch.set_num_threads(1)
    result, path = train_recipe(name, tmp_path, steps=20, progress=False)
    assert len(result.losses) == 20 and all(torch.isfinite(torch.tensor(result.losses)))
    model, meta = load_model(str(path))
    assert meta["recipe"] == name and meta["steps"] == 20
    sd = result.ema_model.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())


def test_latent_diffusion_recipe_smoke(tmp_path, few_digits):
    """A few steps of the latent diffusion recipe on the latents of a 3-step autoencoder; the scale is measured."""
    from diffcourse.pretrained import load_model
    from diffcourse.recipes.latent import train_latent_recipe

    torch.set_num_threads(1)
    _, ae_path = train_latent_recipe("latent-vae", tmp_path / "vae", steps=3, progress=False)
    result, path = train_latent_recipe("latent-ldm", tmp_path / "ldm", steps=5, progress=False, autoencoder=ae_path)
    model, meta = load_model(str(path))
    assert isinstance(model, LatentUNet) and len(result.losses) == 5
    assert model.scale_factor == meta["settings"]["scale_factor"] > 0 and model.scale_factor != 1.0


def test_matched_compute_recipe_charges_its_autoencoder(tmp_path, few_digits):
    """latent-ldm-lsimple trains on the autoencoder trained beside it (its CPU seconds recorded), always with the
    empty prompt and plain L_simple, and saves EMA snapshots along the way."""
    import dataclasses

    import diffcourse.recipes.latent as recipes
    from diffcourse.pretrained import load_model

    torch.set_num_threads(1)
    with pytest.raises(ValueError, match="latent-vae --out"):
        recipes.train_latent_recipe("latent-ldm-lsimple", tmp_path / "latent-ldm-lsimple", steps=2, progress=False)
    recipes.train_latent_recipe("latent-vae", tmp_path / "latent-vae", steps=3, progress=False)
    recipe = recipes.LATENT_RECIPES["latent-ldm-lsimple"]
    assert recipe.p_uncond == 1.0 and recipe.min_snr_gamma is None and recipe.batch_size == 128
    short = dataclasses.replace(recipe, snapshot_every=2)
    seen = []
    orig = recipes.diffusion_loss

    def spy(m, schedule, z0, g, y=None, min_snr_gamma=None):
        seen.append(y)
        return orig(m, schedule, z0, g, y=y, min_snr_gamma=min_snr_gamma)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(recipes.LATENT_RECIPES, "latent-ldm-lsimple", short)
        mp.setattr(recipes, "diffusion_loss", spy)
        _, path = recipes.train_latent_recipe("latent-ldm-lsimple", tmp_path / "latent-ldm-lsimple", steps=4,
                                              progress=False)
    assert seen == [None] * 4, "every batch must be unconditional (the empty prompt)"
    _, meta = load_model(str(path))
    ae_cpu = torch.load(tmp_path / "latent-vae" / "train.pt", weights_only=True)["cpu_seconds"]
    assert meta["settings"]["autoencoder_cpu_seconds"] == round(ae_cpu, 1) and meta["settings"]["encode_cpu_seconds"] >= 0
    assert meta["cpu_seconds"] > 0 and meta["settings"]["autoencoder"].endswith("latent-vae.pt")
    snaps = sorted((tmp_path / "latent-ldm-lsimple" / "snapshots").glob("*.pt"))
    assert [p.name for p in snaps] == ["step000002.pt", "step000004.pt"]


def test_prompt_batches_follow_the_prompts():
    from diffcourse.recipes.latent import prompt_batch_sampler

    labels = torch.arange(10).repeat(30)
    nxt = prompt_batch_sampler(labels, 256, p_uncond=0.25)
    idx, toks = nxt(torch.Generator().manual_seed(0))
    empty = tokenize("")[0]
    dropped = (toks == empty).all(1)
    assert 0.1 < dropped.float().mean() < 0.4
    prompts = {tuple(tokenize(p)[0].tolist()): p for p in all_prompts()}
    for i, row in zip(idx[~dropped].tolist(), toks[~dropped]):
        assert int(labels[i]) in prompt_digits(prompts[tuple(row.tolist())])


def test_latent_trajectory_scrubber():
    from diffcourse.widgets import LatentTrajectoryScrubber

    g = torch.Generator().manual_seed(0)
    trajs = {p: torch.randn(5, 3, 4, 7, 7, generator=g) for p in ("seven", "an odd digit")}
    w = LatentTrajectoryScrubber(trajs, lambda z: torch.tanh(z.mean(1, keepdim=True)).repeat_interleave(4, -1)
                                 .repeat_interleave(4, -2), scale=2.0, times=[999, 700, 400, 100, -1])
    a, b = w.select(0), w.select(4)
    assert a.startswith(b"\x89PNG") and a != b and "final" in w.caption.value
    assert w.select(choice="an odd digit") != b
    with pytest.raises(ValueError, match="times"):
        LatentTrajectoryScrubber(trajs, lambda z: z, scale=1.0, times=[1, 2])
