"""The unconditional text context from a provider (null-text's per-step embeddings, negative-prompt's
source prompt): an attn2 patch on UNet models, an APPLY_MODEL wrapper on MM-DiT models."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import P2PError


class UncondContextPatch:
    """attn2_patch: the unconditional chunk's text context comes from `provider(extra_options)`.

    Rows of the unconditional chunk (found with extra_options["cond_or_uncond"]) are replaced by
    the provided [1, Le, D] context, repeated to the batch's token length (ComfyUI repeats
    prompts of different lengths to their least common multiple).
    """

    def __init__(self, provider: Callable[[dict], torch.Tensor | None]):
        self.provider = provider

    def __deepcopy__(self, memo):  # ModelPatcher.clone() deep-copies model_options
        return self

    def __call__(self, n, context, value, extra_options):
        kinds = extra_options.get("cond_or_uncond") or []
        if 1 not in kinds or context is None:
            return n, context, value
        emb = self.provider(extra_options)
        if emb is None:
            return n, context, value
        chunks = len(kinds)
        per = context.shape[0] // chunks
        length, dim = context.shape[1], context.shape[2]
        if emb.shape[-1] != dim or length % emb.shape[1] != 0:
            raise P2PError(
                f"the inversion's unconditional embedding ({tuple(emb.shape[1:])}) does not fit "
                f"this model's text context ({length} tokens x {dim}). Invert with the same model and CLIP."
            )
        emb = emb.to(device=context.device, dtype=context.dtype)
        if emb.shape[1] != length:
            emb = emb.repeat(1, length // emb.shape[1], 1)
        new_context = _replace_uncond_rows(context, emb, kinds, per)
        if value is context:
            return n, new_context, new_context
        if value is not None and value.shape == context.shape:
            value = _replace_uncond_rows(value, emb, kinds, per)
        return n, new_context, value


class UncondContextWrapper:
    """APPLY_MODEL wrapper: the same replacement on the text context the model is called with
    (`c_crossattn`), for models without cross-attention layers (MM-DiT: SD3's joint attention takes
    the context in its first block). The wrapper's transformer_options hold cond_or_uncond and the
    sigmas, as an attn2 patch's extra_options do."""

    def __init__(self, provider: Callable[[dict], torch.Tensor | None]):
        self.patch = UncondContextPatch(provider)

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                 **kwargs):
        options = transformer_options if transformer_options is not None else {}
        if c_crossattn is not None:
            _, c_crossattn, _ = self.patch(None, c_crossattn, None, options)
        return executor(x, t, c_concat, c_crossattn, control, options, **kwargs)


UNCOND_CONTEXT_KEY = "p2p_uncond_context"


def set_uncond_context(patched, provider: Callable[[dict], torch.Tensor | None]) -> None:
    """The unconditional rows of the text context from `provider`: an attn2 patch on UNet models (every
    cross-attention layer), an APPLY_MODEL wrapper on MM-DiT models."""
    import comfy.patcher_extension

    from ..adapters import model_family

    if model_family(patched) is None:
        patched.set_model_attn2_patch(UncondContextPatch(provider))
    else:
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, UNCOND_CONTEXT_KEY,
                                     UncondContextWrapper(provider))


def _replace_uncond_rows(t: torch.Tensor, emb: torch.Tensor, kinds: list, per: int) -> torch.Tensor:
    parts = [
        emb.expand(per, -1, -1) if kind == 1 else t[c * per : (c + 1) * per] for c, kind in enumerate(kinds)
    ]
    return torch.cat(parts)
