"""Encode a source prompt and N edit prompts into ONE conditioning with a row per batch item.

ComfyUI repeats a text tensor to the latent batch only when their sizes differ, so a
[1+N, L, D] tensor gives item i its own prompt (ConditioningCombine would average instead).
"""

from __future__ import annotations

import torch

from .edits import PromptSet
from .prompts import tokenize_prompts

COND_UID_KEY = "p2p_prompts_uid"  # on the Prompt Pair's conditioning: P2P Apply checks the sampler gets it


def encode_prompt_set(clip, source: str, edits: list[str], node: str = "P2P Prompt Pair"):
    """-> (CONDITIONING, PromptSet)."""
    if clip is None:
        raise ValueError(f"{node}: the CLIP input is empty (a checkpoint without a text encoder?).")
    if not source.strip():
        raise ValueError(f"{node}: the source prompt is empty. Write the prompt of the image to edit.")
    if not edits:
        raise ValueError(f"{node}: no edit prompt. Write one edited prompt per line in 'edits'.")
    try:
        token_dicts, tokenized = tokenize_prompts(clip, [source, *edits])
    except ValueError as e:
        raise ValueError(f"{node}: {e}") from None
    conds, pooled = [], []
    for tokens in token_dicts:
        out = clip.encode_from_tokens(tokens, return_pooled=True, return_dict=True)
        conds.append(out.pop("cond"))
        pooled.append(out.get("pooled_output"))
    prompts = PromptSet(prompts=tuple(tokenized))
    extra = {COND_UID_KEY: prompts.uid}
    if all(p is not None for p in pooled):
        extra["pooled_output"] = torch.cat(pooled)
    return [[torch.cat(conds), extra]], prompts


def split_edit_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def latent_batch(latent: dict, n_items: int, node: str = "P2P Latent Batch") -> dict:
    """Repeat a 1-item LATENT to n_items that share one initial noise (equal batch_index)."""
    samples = latent["samples"]
    if samples.shape[0] != 1:
        raise ValueError(
            f"{node}: the input latent has batch {samples.shape[0]}; give it a single image "
            "(EmptyLatentImage batch_size 1, or one VAEEncode'd image)."
        )
    index = latent.get("batch_index", [0])[0]
    out = {**latent, "samples": samples.repeat(n_items, *([1] * (samples.ndim - 1))), "batch_index": [index] * n_items}
    if "noise_mask" in latent:
        mask = latent["noise_mask"]
        out["noise_mask"] = mask.repeat(n_items, *([1] * (mask.ndim - 1))) if mask.shape[0] == 1 else mask
    return out
