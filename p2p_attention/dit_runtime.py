"""Attention time on MM-DiT models: one optimized_attention_override serves every block of Flux.1
and SD3/SD3.5, installed per model call by an APPLY_MODEL wrapper that also records the text and
image token counts of the call and wraps any override already there (another pack's, or ComfyUI's
attention backend selector), so every attention call still goes through it.

Per joint call: source, unconditional and edit text rows attend as usual; the edit image rows run
joint_attention (cross maps edited in every block, self maps in the chosen blocks). SD3.5's
image-only second attention is a plain self attention: it gets self injection only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import joint_attention as ja
from . import joint_injection as inj
from .batch import batch_layout
from .blend import region_masks
from .edit_runtime import EditRuntime
from .errors import P2PError

TXT_KEY, IMG_KEY, GRID_KEY = "p2p_txt_tokens", "p2p_img_tokens", "p2p_img_grid"
# The conditioning's token count when the model pads the caption after it (Z-Image: TXT_KEY is then the
# padded count; IMG_KEY counts the image pads too), and the per-model-call counter that numbers joint
# calls on a family whose blocks do not name themselves (DiTFamily.count_blocks).
CTX_KEY, COUNT_KEY = "p2p_context_tokens", "p2p_joint_calls"
# The text-only calls a model call starts with, still to come (DiTFamily.text_blocks: Lumina 2's context
# refiner); counted, not told by length alone, as the caption may be as long as the image.
TEXT_CALLS_KEY = "p2p_text_calls"
_STORE_HEAD_CHUNK = 4  # heads per map product while storing (bounds the transient memory)


def _index(rows: list[int]):
    """Batch rows as a slice when they are contiguous (indexing then gives views, not copies)."""
    return slice(rows[0], rows[-1] + 1) if rows == list(range(rows[0], rows[-1] + 1)) else rows


def _runs(rows: list[int]):
    """Batch rows as slices, one per contiguous run."""
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i] != rows[i - 1] + 1:
            yield slice(rows[start], rows[i - 1] + 1)
            start = i


def _key_mask(mask, batch: int, length: int):
    """A backend call's attention mask (bool: True attends; else additive; ComfyUI's 2-, 3- or 4-d
    shapes) as an additive fp32 key mask [B, 1, 1, L], or None. A mask that differs per query or head
    cannot be split into the edit's calls: refused, not ignored."""
    if mask is None:
        return None
    m = mask
    if m.dtype == torch.bool:
        m = torch.zeros(m.shape, device=m.device).masked_fill(~m, float("-inf"))
    m = m.float()
    while m.ndim < 4:
        m = m.unsqueeze(0 if m.ndim == 2 else 1)
    if m.shape[2] > 1 and bool((m == m[:, :, :1]).all()):  # a full mask that hides the same keys from every
        m = m[:, :, :1]  # query (a conditioning's attention_mask, Flux/Chroma's [B, L, L]) is a key mask
    if m.shape[1] != 1 or m.shape[2] != 1 or m.shape[-1] != length:
        raise P2PError(f"this model's attention mask {tuple(mask.shape)} depends on the query or the head; "
                       "Prompt-to-Prompt can edit only calls whose mask hides keys (text padding).")
    return m.expand(batch, -1, -1, -1)


def _heads(q, k, v, heads, skip_reshape):
    """Any backend call's q/k/v -> [B, H, L, D] (Flux passes them so; SD3 as [B, L, H*D], v 4-D)."""
    if skip_reshape:
        return q, k, v
    b = q.shape[0]
    return tuple(t.reshape(b, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))


def _pad_coefficients(coeffs, extra: int):
    """The coefficients of a context followed by `extra` pad tokens the model appended (Z-Image's
    cap_pad_token): each pad maps to itself and takes the context's last token's (an end token's)
    a1, a2, as the prompt's own pads do."""
    if coeffs is None or extra <= 0:
        return coeffs
    n, lk = coeffs.a1.shape
    eye = torch.eye(extra, dtype=coeffs.M.dtype, device=coeffs.M.device).expand(n, -1, -1)
    m = torch.zeros(n, lk + extra, lk + extra, dtype=coeffs.M.dtype, device=coeffs.M.device)
    m[:, :lk, :lk], m[:, lk:, lk:] = coeffs.M, eye
    a1 = torch.cat([coeffs.a1, coeffs.a1[:, -1:].expand(n, extra)], 1)
    a2 = torch.cat([coeffs.a2, coeffs.a2[:, -1:].expand(n, extra)], 1)
    return type(coeffs)(m, a1, a2, coeffs.uses_source, coeffs.uses_own)


@dataclass
class DiTRuntime(EditRuntime):
    """State shared by the joint-attention override of one P2P Apply on an MM-DiT."""

    self_blocks: set = field(default_factory=set)  # the blocks with structure injection
    structure: str = inj.VALUES  # what self_replace injects (joint_injection)
    region_spec: inj.RegionSpec = field(default_factory=inj.RegionSpec)
    _region: tuple | None = None  # (step, [N, n_img] bool): this step's edited region
    count_type: str = ""  # the block_type of counted joint calls (DiTFamily.count_blocks)
    # Edit items x heads in one pass over the edit rows: the edit's extra memory scales with it
    # (docs/benchmarks.md); tests set 1 to check that the passes add up to the whole.
    edit_heads_per_pass: int = 8
    # One entry each: every block of a model call passes the same mask and the step's coefficients,
    # so the key bias and the padded coefficients are built once per model call, not once per block.
    _bias_memo: tuple = (None, None)
    _pad_memo: tuple = (None, None)

    def region(self, step: int, n_img: int | None = None):
        """The edited region of each edit item at this step (read once per step from the store); n_img:
        the call's image tokens, when the model appends pad tokens to the grid's (outside the region)."""
        if self._region is None or self._region[0] != step:
            r = self.region_spec
            self._region = (step, region_masks(self.store, self.compiled, self.plan.blend, self.plan.prompts,
                                               r.threshold, r.dilation))
        region = self._region[1]
        if region is not None and n_img is not None and n_img > region.shape[1]:
            region = torch.cat([region, region.new_zeros(region.shape[0], n_img - region.shape[1])], 1)
        return region

    def attend(self, backend, args, kwargs):
        to = kwargs.get("transformer_options") or {}
        n_txt, n_img = to.get(TXT_KEY), to.get(IMG_KEY)
        q, k, v = args[:3]
        heads = args[3] if len(args) > 3 else kwargs["heads"]
        skip = kwargs.get("skip_reshape", False)
        length = q.shape[2] if skip else q.shape[1]
        joint = n_txt is not None and length == n_txt + n_img
        text_only = not joint and length == n_txt and next(to.get(TEXT_CALLS_KEY, iter(())), None) is not None
        image_only = n_img is not None and length == n_img and not joint and not text_only
        block = (to.get("block_type"), to.get("block_index"))
        if joint and block[1] is None and COUNT_KEY in to:  # blocks that do not name themselves
            block = (self.count_type, next(to[COUNT_KEY]))
        if block[1] is not None:
            self.ran.add(block)  # (EditRuntime.check_blocks_ran)
        mask = args[4] if len(args) > 4 else kwargs.get("mask")
        if not (joint or image_only or text_only):
            return backend(*args, **kwargs)  # another attention (e.g. Kontext references): untouched
        layout = batch_layout(q.shape[0], to["cond_or_uncond"], self.compiled.n_edits)
        if not layout.groups:  # no edit item in this call (an unconditional-only call)
            return backend(*args, **kwargs)
        n_t = 0 if image_only else n_txt  # the call's text tokens (none in an image-only attention)
        bias = self._key_bias(mask, layout, q.shape[0], length, n_t, q.device)
        if n_t and any(p.n_masked for p in self.plan.prompts.prompts):
            args, kwargs = args[:4], {**kwargs, "mask": bias.to(q.dtype)}  # + the prompts' padding
        if text_only:  # the caption alone, its padding hidden: nothing to edit (only the joint calls are)
            return backend(*args, **kwargs)
        step, n_steps = self.clock(to)
        structure = self.structure if block in self.self_blocks and self.compiled.self_active(step, n_steps) else None
        qh, kh, vh = _heads(q, k, v, heads, skip)
        coeffs = None
        if joint:
            n_ctx = to.get(CTX_KEY, n_txt)  # the context's tokens; the model's caption pads follow
            coeffs = self.compiled.cross_coefficients(step, n_steps, n_ctx, q.device, q.dtype)
            if self.store is not None:
                self._record(qh, kh, n_txt, layout, coeffs, to[GRID_KEY], n_ctx, bias, structure == inj.QK)
            coeffs = self._padded(coeffs, n_txt - n_ctx)
        outside = None
        if structure == inj.VALUES:
            region = self.region(step, n_img)
            outside = None if region is None else ~region
        substitute = structure == inj.QK or outside is not None
        inject = structure == inj.MAPS
        if coeffs is None and not inject and not substitute:
            return backend(*args, **kwargs)

        def sdpa(q_, k_, v_, mask_=None):
            # _inside_attn_wrapper: a wrapped backend must not hand the call back to an override.
            out = backend(q_, k_, v_, q_.shape[1], mask=None if mask_ is None else mask_.to(q_.dtype), skip_reshape=True,
                          transformer_options=to, _inside_attn_wrapper=True)
            return out.reshape(q_.shape[0], q_.shape[2], q_.shape[1], -1).transpose(1, 2)

        if coeffs is None and not inject:  # only substituted rows: one call, as the model's own
            qh, kh, vh = self._substituted(qh, kh, vh, layout.groups, n_t, structure, outside)
            return sdpa(qh, kh, vh, bias).transpose(1, 2).reshape(q.shape[0], length, -1)

        # The result in the backends' layout [B, L, H*D], written through a [B, H, L, D] view: no copy at the end.
        out = q.new_empty(q.shape[0], length, heads, vh.shape[-1])
        view = out.transpose(1, 2)
        edits = {e for _, es in layout.groups for e in es}
        for rows in _runs([i for i in range(q.shape[0]) if i not in edits]):  # source and unconditional rows
            view[rows] = sdpa(qh[rows], kh[rows], vh[rows], None if bias is None else bias[rows])
        # The edit rows a few heads at a time (fewer, the more edit items): the edit's extra tensors (its
        # substituted q/k/v, the extra value channel, the source's calls) stay a fraction of the call's own.
        for src, es in layout.groups:
            per_pass = max(1, self.edit_heads_per_pass // len(es))
            rows = _index(es)  # a slice when contiguous: views, not copies
            mask_s, mask_e = (None, None) if bias is None else (bias[src : src + 1], bias[rows])
            for h in range(0, heads, per_pass):
                hs = slice(h, h + per_pass)
                q_e, k_e, v_e = self._edit_rows(qh, kh, vh, src, rows, hs, n_t, structure, outside)
                for part, r in self._edit(sdpa, qh[src : src + 1, hs], kh[src : src + 1, hs], q_e, k_e, v_e, n_t,
                                          coeffs, inject, mask_s, mask_e):
                    view[rows, hs, part] = r
        return out.reshape(q.shape[0], length, -1)

    def _edit_rows(self, qh, kh, vh, src, es, hs, n_t, structure, outside):
        """The edit rows `es` (heads `hs`) of q, k, v with the structure control's source rows substituted."""
        q_e, k_e, v_e = qh[es, hs], kh[es, hs], vh[es, hs]
        if structure == inj.QK:
            q_e = inj.structure_rows(qh[src : src + 1, hs], q_e, n_t)
            k_e = inj.structure_rows(kh[src : src + 1, hs], k_e, n_t)
        elif outside is not None:
            v_e = inj.outside_rows(vh[src : src + 1, hs], v_e, n_t, outside)
            if self.region_spec.keys:
                k_e = inj.outside_rows(kh[src : src + 1, hs], k_e, n_t, outside)
        return q_e, k_e, v_e

    def _substituted(self, qh, kh, vh, groups, n_t, structure, outside):
        """The whole batch's q, k, v with every group's edit rows substituted (copies only of what changes)."""
        changed = (True, True, False) if structure == inj.QK else (False, self.region_spec.keys, True)
        full = [t.clone() if c else t for t, c in zip((qh, kh, vh), changed)]
        for src, es in groups:
            rows = self._edit_rows(qh, kh, vh, src, es, slice(None), n_t, structure, outside)
            for t, r, c in zip(full, rows, changed):
                if c:
                    t[es] = r
        return full

    def _padded(self, coeffs, extra: int):
        """_pad_coefficients, once per step's coefficients (the memo holds them)."""
        memo_key, memo = self._pad_memo
        if memo_key is None or memo_key[0] is not coeffs or memo_key[1] != extra:
            memo = _pad_coefficients(coeffs, extra)
            self._pad_memo = ((coeffs, extra), memo)
        return memo

    def _key_bias(self, mask, layout, batch: int, length: int, n_txt: int, device):
        """The call's additive key mask [B, 1, 1, L] fp32: the model's mask (ComfyUI 0.33.0 masks Qwen-Image's
        text padding), and the prompts' MASKED padding on the cond chunks' rows, each row its own prompt's
        (0.3.75 passes no mask); the text is the call's first n_txt tokens (all of a text-only call's). None
        when nothing is masked (Flux.1, SD3: unchanged calls)."""
        # (the mask by identity: every block of a model call passes the same tensor; the memo holds it)
        key = (mask, tuple((src, tuple(es)) for src, es in layout.groups), batch, length, n_txt, str(device))
        memo_key, memo = self._bias_memo
        if memo_key is not None and memo_key[0] is mask and memo_key[1:] == key[1:]:
            return memo
        bias = self._build_key_bias(mask, layout, batch, length, n_txt, device)
        self._bias_memo = (key, bias)
        return bias

    def _build_key_bias(self, mask, layout, batch: int, length: int, n_txt: int, device):
        bias = _key_mask(mask, batch, length)
        prompts = self.plan.prompts.prompts
        if n_txt == 0 or not any(p.n_masked for p in prompts) or not layout.groups:
            return bias
        if n_txt != self.plan.prompts.length:
            raise P2PError(f"the text context has {n_txt} tokens, the prompts {self.plan.prompts.length}.",
                           fix="sampler_positive")
        own = torch.zeros(batch, 1, 1, length, device=device)
        for src, es in layout.groups:
            for row, p in zip([src, *es], prompts):  # after the words (Chroma) or before them (Lumina 2)
                own[row, ..., list(p.masked_positions)] = float("-inf")
        return own if bias is None else torch.minimum(bias.to(device), own)

    def _edit(self, sdpa, q_s, k_s, q_e, k_e, v_e, n_txt, coeffs, inject, mask_s=None, mask_e=None):
        """The edit rows of one group and head chunk, as (token slice, rows [N, h, ., D]) pieces."""
        if n_txt == 0:  # image-only attention, injecting: the source's self map on the edit's values
            rows = (ja.joint_maps(q_s, k_s, mask_s).expand(q_e.shape[0], -1, -1, -1) @ v_e.float()).to(v_e.dtype) \
                if self.reference else sdpa(q_s.expand(q_e.shape[0], -1, -1, -1), k_s.expand_as(k_e), v_e,
                                            None if mask_s is None else mask_s.expand(q_e.shape[0], -1, -1, -1))
            return [(slice(None), rows)]
        text_rows = sdpa(q_e[:, :, :n_txt], k_e, v_e, mask_e)
        image = ja.edit_rows_reference if self.reference else (lambda *a, **kw: ja.edit_rows_fast(sdpa, *a, **kw))
        image_rows = image(q_s[:, :, n_txt:], k_s, q_e[:, :, n_txt:], k_e, v_e, n_txt, coeffs, inject,
                           mask_s=mask_s, mask_e=mask_e)
        return [(slice(None, n_txt), text_rows), (slice(n_txt, None), image_rows)]

    def _record(self, qh, kh, n_txt, layout, coeffs, grid, n_ctx=None, bias=None, image_qk=False):
        """The cross maps (image rows over text keys, renormalised: P2P's maps) of the first cond
        chunk, head-averaged, into the store. n_ctx: the context's tokens among the n_txt (the rest are
        the model's caption pads); the image rows are the grid's (pads the model appends left out); bias:
        the call's key mask (_key_bias) or None; image_qk: the edit items' image queries are the source's
        (the image_qk structure control), as in their attention."""
        src, es = layout.groups[0]
        idx = [src, *es]
        n_ctx = n_txt if n_ctx is None else n_ctx
        img = slice(n_txt, n_txt + grid[0] * grid[1])
        q_img = qh[src : src + 1, :, img].expand(len(idx), -1, -1, -1) if image_qk else qh[idx][:, :, img]
        k_txt = kh[idx][:, :, :n_ctx]
        key_mask = None if bias is None else bias[idx][..., :n_ctx]  # masked text padding: no map
        total = None
        for h0 in range(0, q_img.shape[1], _STORE_HEAD_CHUNK):
            part = ja.joint_maps(q_img[:, h0 : h0 + _STORE_HEAD_CHUNK], k_txt[:, h0 : h0 + _STORE_HEAD_CHUNK],
                                 key_mask).sum(1)
            total = part if total is None else total + part
        self.store.add(total / q_img.shape[1], grid[0], grid[1], coeffs)


class JointAttentionOverride:
    """optimized_attention_override(fn, *args, **kwargs): ours around whatever was installed."""

    def __init__(self, runtime: DiTRuntime, prior=None):
        self.runtime, self.prior = runtime, prior

    def __call__(self, fn, *args, **kwargs):
        backend = fn if self.prior is None else (lambda *a, **k: self.prior(fn, *a, **k))
        return self.runtime.attend(backend, args, kwargs)
