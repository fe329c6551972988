"""The DiT stage: ComfyUI's Flux (FluxSchnell config, p2p_models/demo_dit.py) and the tiny
T5 of its FluxClipModel trained jointly on rectified flow, plus an auxiliary attention loss.

Flow matching as ComfyUI samples it (FLOW, CONST, shift 1, multiplier 1): x_s = (1 - s) x0 + s eps,
the model's output v should be eps - x0 (denoised = x_s - s v), the DiT's timestep input is s.
s is logit-normal (SD3's choice). 10% of the captions are empty (CFG). The text encoder's forward
is ComfyUI's own (SDClipModel.forward on the token lists clip.tokenize gives, T5 padded to
T5_MIN_LENGTH): what inference computes.

ComfyUI's Flux blocks add their residuals in place (`img += ...`), which autograd refuses; training
runs each block through a "dit" block replace patch with the same operations out of place
(checked against the stock blocks before training starts). The attention itself is ComfyUI's
flux.math.attention (RoPE, then optimized_attention), so an optimized_attention_override sees it:
the attention loss's capture computes the joint softmax explicitly and keeps each block's
head-averaged image->text map (P2P's cross map: image rows over the text keys, renormalised).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import shapes_dataset as ds
import torch
import torch.nn.functional as F
from train_common import log

from p2p_attention.maps import softmax_maps
from p2p_models.demo_dit import LATENT_HW, build_dit, build_text, pack_state_dict

POOL = ds.SIZE // LATENT_HW  # pixels per latent pixel (4)
WORLD = ds  # the dataset module: shapes_dataset, or scenes_dataset (set_world)


def set_world(module) -> None:
    """Train on another world's captions (its vocabulary(), object_words(), object_coverage())."""
    global WORLD
    assert module.SIZE // LATENT_HW == POOL
    WORLD = module


# ----------------------------------------------------------------------------- text
def t5_tokens(clip, caption: str) -> list[int]:
    return [t for t, _w in clip.tokenize(caption)["t5xxl"][0]]


def word_token_positions(clip, caption: str) -> list[list[int]]:
    """T5 token positions of each whitespace word (T5 has no start token)."""
    sub = clip.tokenizer.t5xxl.tokenizer
    out, pos = [], 0
    for w in caption.split():
        n = len(sub(w)["input_ids"]) - 1  # without the end token
        out.append(list(range(pos, pos + n)))
        pos += n
    full = t5_tokens(clip, caption)
    assert [full[p] for ps in out for p in ps] == full[:pos] and full[pos] == 1, caption
    return out


# ----------------------------------------------------------------------------- blocks
def _mod(x, m):
    return torch.addcmul(m.shift, x, 1 + m.scale)


def _qkv(lin_out, heads):
    q, k, v = lin_out.view(lin_out.shape[0], lin_out.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
    return q, k, v


def _double(block):
    from comfy.ldm.flux.math import attention

    def run(args, extra):
        img, txt, vec, pe, to = args["img"], args["txt"], args["vec"], args["pe"], args["transformer_options"]
        im1, im2 = block.img_mod(vec)
        tm1, tm2 = block.txt_mod(vec)
        iq, ik, iv = _qkv(block.img_attn.qkv(_mod(block.img_norm1(img), im1)), block.num_heads)
        iq, ik = block.img_attn.norm(iq, ik, iv)
        tq, tk, tv = _qkv(block.txt_attn.qkv(_mod(block.txt_norm1(txt), tm1)), block.num_heads)
        tq, tk = block.txt_attn.norm(tq, tk, tv)
        attn = attention(torch.cat((tq, iq), 2), torch.cat((tk, ik), 2), torch.cat((tv, iv), 2), pe=pe,
                         mask=args.get("attn_mask"), transformer_options=to)
        ta, ia = attn[:, : txt.shape[1]], attn[:, txt.shape[1]:]
        img = img + block.img_attn.proj(ia) * im1.gate
        img = img + block.img_mlp(_mod(block.img_norm2(img), im2)) * im2.gate
        txt = txt + block.txt_attn.proj(ta) * tm1.gate
        txt = txt + block.txt_mlp(_mod(block.txt_norm2(txt), tm2)) * tm2.gate
        return {"img": img, "txt": txt}

    return run


def _single(block):
    from comfy.ldm.flux.math import attention

    def run(args, extra):
        x, vec, pe, to = args["img"], args["vec"], args["pe"], args["transformer_options"]
        mod, _ = block.modulation(vec)
        qkv, mlp = torch.split(block.linear1(_mod(block.pre_norm(x), mod)),
                               [3 * block.hidden_size, block.mlp_hidden_dim_first], dim=-1)
        q, k, v = _qkv(qkv, block.num_heads)
        q, k = block.norm(q, k, v)
        attn = attention(q, k, v, pe=pe, mask=args.get("attn_mask"), transformer_options=to)
        return {"img": x + block.linear2(torch.cat((attn, block.mlp_act(mlp)), 2)) * mod.gate}

    return run


def training_options(dm, capture=None) -> dict:
    """transformer_options routing every block through its out-of-place copy (and the attention
    through `capture` when given)."""
    rep = {("double_block", i): _double(b) for i, b in enumerate(dm.double_blocks)}
    rep.update({("single_block", i): _single(b) for i, b in enumerate(dm.single_blocks)})
    to = {"patches_replace": {"dit": rep}}
    if capture is not None:
        to["optimized_attention_override"] = capture
    return to


class JointCapture:
    """optimized_attention_override for training: explicit joint softmax (differentiable); keeps
    each call's head-averaged cross map [B, image tokens, text tokens] (rows renormalised)."""

    def __init__(self, n_txt: int):
        self.n_txt = n_txt
        self.maps: list[torch.Tensor] = []

    def __call__(self, func, q, k, v, heads, **kwargs):
        p = softmax_maps(q, k)  # fp32, as the engine's
        c = p[:, :, self.n_txt:, : self.n_txt]
        self.maps.append((c / c.sum(-1, keepdim=True)).mean(1))
        out = p @ v
        return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)


def check_blocks(dm, n_txt: int, seed: int) -> float:
    """Max |stock forward - training forward| on a random batch (the copies must be the blocks)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, LATENT_HW, LATENT_HW, generator=g)
    ctx = torch.randn(2, n_txt, dm.params.context_in_dim, generator=g)
    t = torch.rand(2, generator=g)
    with torch.no_grad():
        a = dm(x, t, ctx, transformer_options={})
        b = dm(x, t, ctx, transformer_options=training_options(dm))
        c = dm(x, t, ctx, transformer_options=training_options(dm, JointCapture(n_txt)))
    return max((a - b).abs().max().item(), (a - c).abs().max().item())


def _t5_ff(layer):
    def forward(x):
        return x + layer.DenseReluDense(layer.layer_norm(x))

    return forward


def _t5_self_attention(layer):
    def forward(x, mask=None, past_bias=None, optimized_attention=None):
        out, past_bias = layer.SelfAttention(layer.layer_norm(x), mask=mask, past_bias=past_bias,
                                             optimized_attention=optimized_attention)
        return x + out, past_bias

    return forward


def out_of_place_t5(t5) -> list:
    """ComfyUI's T5 layers add their residuals in place too: give these instances (only) the
    same forwards out of place; returns the patched modules (del their .forward to undo)."""
    from comfy.text_encoders.t5 import T5LayerFF, T5LayerSelfAttention

    patched = []
    for m in t5.modules():
        if isinstance(m, T5LayerFF):
            m.forward = _t5_ff(m)
        elif isinstance(m, T5LayerSelfAttention):
            m.forward = _t5_self_attention(m)
        else:
            continue
        patched.append(m)
    return patched


# ----------------------------------------------------------------------------- attention loss
def object_targets(scenes, captions, clip):
    """Per sample: T5 positions of each object's size/colour/shape words [N, 6] (-1 pad), the
    object they name [N, 6], the objects' coverage at the latent's resolution [N, 2, 64]."""
    if hasattr(WORLD, "object_words"):
        return _world_targets(scenes, captions, clip)
    n = len(scenes)
    pos = torch.full((n, 6), -1, dtype=torch.long)
    obj = torch.zeros((n, 6), dtype=torch.long)
    masks = torch.zeros((n, 2, LATENT_HW * LATENT_HW))
    cache: dict[tuple, list] = {}
    for i, (sc, cap) in enumerate(zip(scenes, captions)):
        words = cap.split()
        key = tuple(len(w) == 1 for w in words)  # positions depend only on which words are "a"
        wpos = cache.get(key) or cache.setdefault(key, word_token_positions(clip, cap))
        split = words.index("above") if sc.relation == "above" else words.index("and")
        j = 0
        for wi, w in enumerate(words):
            if w in ds.COLOURS or w in ds.SHAPES or w in ds.SIZES:
                pos[i, j], obj[i, j] = wpos[wi][0], int(wi > split)
                j += 1
        for k, o in enumerate(sc.objs):
            m = torch.from_numpy(ds.shape_mask(o.shape, o.cx, o.cy, o.radius, ss=4))
            masks[i, k] = F.avg_pool2d(m[None, None], POOL).flatten()
    return pos, obj, masks


def _world_targets(scenes, captions, clip):
    """object_targets for a world that says which caption words name which object."""
    n = len(scenes)
    pos = torch.full((n, 6), -1, dtype=torch.long)
    obj = torch.zeros((n, 6), dtype=torch.long)
    masks = torch.zeros((n, 2, LATENT_HW * LATENT_HW))
    cache: dict[str, list] = {}
    for i, (sc, cap) in enumerate(zip(scenes, captions)):
        wpos = cache.get(cap) or cache.setdefault(cap, word_token_positions(clip, cap))
        for j, (wi, k) in enumerate(WORLD.object_words(cap)):
            pos[i, j], obj[i, j] = wpos[wi][0], k
        for k in range(2):
            m = torch.from_numpy(WORLD.object_coverage(sc, k))
            masks[i, k] = F.avg_pool2d(m[None, None], POOL).flatten()
    return pos, obj, masks


def attention_loss(maps, pos, obj, masks, valid) -> torch.Tensor:
    """Mean over blocks and object words of -log(share of the word's map, normalised over the
    image, on its own object)."""
    if not valid.any():
        return torch.zeros(())
    b, p = pos.shape
    mk = masks.gather(1, obj[:, :, None].expand(b, p, masks.shape[-1]))  # [B, 6, Nimg]
    losses = []
    for a in maps:  # [B, Nimg, T]
        at = a.gather(2, pos.clamp(min=0)[:, None, :].expand(b, a.shape[1], p))  # [B, Nimg, 6]
        at = at / at.sum(1, keepdim=True)
        share = (at * mk.transpose(1, 2)).sum(1)
        losses.append(-(share + 1e-4).log()[valid])
    return torch.cat(losses).mean()


# ----------------------------------------------------------------------------- training
def lr_at(step: int, args) -> float:
    """Warmup 50 steps, then halving every --lr-halflife steps: independent of the run's length,
    so the checkpoint after K steps is exactly a K-step run."""
    return args.dit_lr * min(1.0, (step + 1) / 50) * 0.5 ** (max(0, step - 50) / args.lr_halflife)


def _build(args, init):
    torch.manual_seed(args.seed + 10)
    patcher = build_dit(state_dict=None if init is None else init[0], seed=args.seed + 11)
    clip = build_text(state_dict=None if init is None else init[1], seed=args.seed + 12)
    dm = patcher.model.diffusion_model.float().train()
    t5 = clip.cond_stage_model.t5xxl.float().train()
    if init is None:
        with torch.no_grad():
            t5.transformer.shared.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(args.seed + 13))
            dm.final_layer.linear.weight.zero_()
            dm.final_layer.linear.bias.zero_()
    params = list(dm.parameters()) + list(t5.parameters())
    for p in params:
        p.requires_grad_(True)
    return patcher, clip, dm, t5, params


def _state_dicts(dm, clip) -> tuple[dict, dict]:
    return ({k: v.detach().clone() for k, v in dm.state_dict().items()},
            {k: v.detach().clone() for k, v in clip.cond_stage_model.state_dict().items()})


def _save_ema(dm, clip, params, ema, path: Path) -> None:
    with torch.no_grad():
        live = [p.detach().clone() for p in params]
        for e, p in zip(ema, params):
            p.copy_(e)
        torch.save(_state_dicts(dm, clip), path)
        for lv, p in zip(live, params):
            p.copy_(lv)


@contextlib.contextmanager
def comfy_training_mode():
    """ComfyUI's flag for training, set as its own train node sets it: from 0.33 its rope runs a fused
    comfy_kitchen kernel that has no backward unless the flag is on (0.3.75 has no such kernel)."""
    import comfy.model_management as mm

    before = getattr(mm, "in_training", False)
    mm.in_training = True
    try:
        yield
    finally:
        mm.in_training = before


def train_dit(latents: torch.Tensor, captions, scenes, args, init=None) -> tuple[dict, dict]:
    """The EMA weights (DiT state dict, text encoder state dict) after --dit-steps steps."""
    with comfy_training_mode():
        return _train_dit(latents, captions, scenes, args, init)


def _train_dit(latents: torch.Tensor, captions, scenes, args, init=None) -> tuple[dict, dict]:
    steps = args.dit_steps
    patcher, clip, dm, t5, params = _build(args, init)
    ids = [t5_tokens(clip, c) for c in captions]
    empty = t5_tokens(clip, "")
    n_txt = len(empty)
    assert all(len(t) == n_txt for t in ids), "every caption within T5_MIN_LENGTH tokens"
    log(f"dit: {sum(p.numel() for p in dm.parameters()) / 1e6:.2f}M params, T5 "
        f"{sum(p.numel() for p in t5.parameters()) / 1e6:.2f}M; block copies vs stock max diff "
        f"{check_blocks(dm, n_txt, args.seed):.2e}")
    with torch.no_grad():
        ref = t5([ids[0], empty])[0]
    patched = out_of_place_t5(t5)
    with torch.no_grad():
        assert torch.equal(ref, t5([ids[0], empty])[0]), "out-of-place T5 layers differ from ComfyUI's"
    lam = args.attn_loss
    pos_all, obj_all, masks_all = object_targets(scenes, captions, clip)
    opt = torch.optim.Adam(params, lr=args.dit_lr)
    ema = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(args.seed + 15)
    t0 = time.time()
    run = arun = 0.0
    for step in range(steps):
        idx = torch.randint(0, len(latents), (args.batch,), generator=gen)
        drop = torch.rand(args.batch, generator=gen) < args.p_uncond
        s = torch.sigmoid(torch.randn(args.batch, generator=gen))
        x0 = latents[idx]
        eps = torch.randn(x0.shape, generator=gen)
        xs = (1 - s.view(-1, 1, 1, 1)) * x0 + s.view(-1, 1, 1, 1) * eps
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        ctx = t5([empty if d else ids[i] for i, d in zip(idx.tolist(), drop.tolist())])[0]
        capture = JointCapture(n_txt) if lam > 0 else None
        v = dm(xs, s, ctx, transformer_options=training_options(dm, capture))
        per = (v - (eps - x0)).square().mean(dim=(1, 2, 3))
        loss = per.mean()
        if lam > 0:
            la = attention_loss(capture.maps, pos_all[idx], obj_all[idx], masks_all[idx],
                                (pos_all[idx] >= 0) & ~drop[:, None])
            arun = la.item() if step == 0 else 0.98 * arun + 0.02 * la.item()
            loss = loss + lam * la
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        run = per.mean().item() if step == 0 else 0.98 * run + 0.02 * per.mean().item()
        if args.ckpt_every and (step + 1) % args.ckpt_every == 0 and step + 1 < steps:
            _save_ema(dm, clip, params, ema, Path(args.work) / f"dit_{step + 1}steps.pt")
        if step % 25 == 0 or step == steps - 1:
            log(f"dit step {step}/{steps} v-mse(avg) {run:.4f} attn-loss(avg) {arun:.3f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s")
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    for m in patched:
        del m.forward
    return _state_dicts(dm, clip)


# ----------------------------------------------------------------------------- export
def used_token_ids(clip, captions=None) -> dict[str, list[int]]:
    """Token ids of the vocabulary (+ end / pad / start) per text encoder; with captions, checks
    they use no others."""
    used: dict[str, set] = {"t5": set(), "clip_l": set()}
    captions = set(captions or [])
    for text in WORLD.vocabulary() + [""] + sorted(captions):
        tok = clip.tokenize(text)
        ids = {"t5": {t for t, _ in tok["t5xxl"][0]}, "clip_l": {t for t, _ in tok["l"][0]}}
        if text in captions:
            for k in used:
                assert ids[k] <= used[k], f"{text!r} uses tokens outside the vocabulary"
        for k in used:
            used[k] |= ids[k]
    return {k: sorted(v) for k, v in used.items()}


def export(dit_sd: dict, text_sd: dict, vae_sd: dict, captions, out: Path, name: str = "p2p_demo_flux_tiny") -> None:
    import safetensors.torch

    sd = pack_state_dict(dit_sd, text_sd, vae_sd, used_token_ids(build_text(seed=0), captions))
    out.parent.mkdir(parents=True, exist_ok=True)
    # One metadata entry: safetensors writes its metadata map in hash order (see export_weights).
    safetensors.torch.save_file(sd, str(out), metadata={"model": name})
