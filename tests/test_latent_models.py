"""Chapter 8's networks: the autoencoder, the prompt encoder, the latent U-Net with cross-attention, the GAN,
their recipes (a short training run each), checkpoint round trips and the latent-trajectory widget."""
import pytest
import torch

from diffcourse.latent import cross_attention, gaussian_kl
from diffcourse.models import GAN, Autoencoder, LatentUNet, PromptEncoder
from diffcourse.models.autoencoder import vae_loss
from diffcourse.models.gan import gan_loss
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


def test_gan_loss_gives_each_player_its_own_gradient():
    torch.manual_seed(0)
    gan = GAN(z_dim=8, ch=8)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    gan_loss(gan, real, torch.Generator().manual_seed(0)).backward()
    grads_d = [p.grad.clone() for p in gan.discriminator.parameters()]
    gan.zero_grad()
    # the discriminator's gradient must be that of L_D alone
    u = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    fake = gan.generator(u).detach()
    ld = torch.nn.functional.softplus(-gan.discriminator(real)).mean() + torch.nn.functional.softplus(gan.discriminator(fake)).mean()
    ld.backward()
    for a, p in zip(grads_d, gan.discriminator.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)
    assert gan.sample(5, torch.Generator().manual_seed(1)).shape == (5, 1, 28, 28)


@pytest.fixture
def few_digits(monkeypatch):
    """The recipes read 600 training digits instead of 60 000 (encoding them all would dominate a smoke test)."""
    import diffcourse.recipes.latent as recipes
    from diffcourse.data.mnist import load_mnist

    x, y = load_mnist("train")
    monkeypatch.setattr(recipes, "load_mnist", lambda split="train": (x[:600], y[:600]))


@pytest.mark.parametrize("name", ["latent-vae", "latent-gan"])
def test_recipe_smoke_and_checkpoint_round_trip(name, tmp_path, few_digits):
    from diffcourse.pretrained import load_model
    from diffcourse.recipes.mnist import train_recipe

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
