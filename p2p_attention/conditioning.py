"""Encode a source prompt and N edit prompts into ONE conditioning with a row per batch item.

ComfyUI repeats a text tensor to the latent batch only when their sizes differ, so a
[1+N, L, D] tensor gives item i its own prompt (ConditioningCombine would average instead).
"""

from __future__ import annotations

import torch

from .chat_tokens import template_of
from .edits import PromptSet
from .errors import P2PError, warn
from .prompts import MASKED, PAD, T5_KEY, _sub_tokenizer, pads_prompts, tokenize_streams, zero_padded_left
from .spiece_tokens import shared_system_prompt, spiece_keys
from .text_streams import LEFT_PADDED_CONTEXT, context_prompt
from .vocabulary import known_vocabulary, unknown_words

COND_UID_KEY = "p2p_prompts_uid"  # on the Prompt Pair's conditioning: P2P Apply checks the sampler gets it


def encode_prompt_set(clip, source: str, edits: list[str]):
    """-> (CONDITIONING, PromptSet)."""
    if clip is None:
        raise P2PError("the CLIP input is empty (a checkpoint without a text encoder?).")
    if not source.strip():
        raise P2PError("the source prompt is empty. Write the prompt of the image to edit.")
    if not edits:
        raise P2PError("no edit prompt. Write one edited prompt per line in 'edits'.")
    texts = shared_system_prompt(clip, [source, *edits])  # Lumina 2: the edits take the source's system prompt
    token_dicts, streams = tokenize_streams(clip, texts)
    unpadded = _unpadded(clip, token_dicts)
    if unpadded == "right":
        # A tokenizer that does not pad (Chroma's T5): each prompt encoded as a plain CLIPTextEncode
        # encodes it, zero-padded to the longest, the padding MASKED (dit_runtime masks it in every call).
        token_dicts = [clip.tokenize(t) for t in texts]
    conds, pooled, masks = [], [], []
    for tokens in token_dicts:
        out = clip.encode_from_tokens(tokens, return_pooled=True, return_dict=True)
        conds.append(out.pop("cond"))
        pooled.append(out.get("pooled_output"))
        masks.append(out.get("attention_mask"))
    lengths = [c.shape[1] for c in conds]
    if unpadded == "right":
        conds = [torch.nn.functional.pad(c, (0, 0, 0, max(lengths) - c.shape[1])) for c in conds]
    has_t5 = getattr(clip.cond_stage_model, "t5xxl", None) is not None
    tokenized = [context_prompt(s, c.shape[1], has_t5) for s, c in zip(streams, conds)]
    tokenized, mask = _masked_padding(streams, tokenized, masks)
    if unpadded == "right":
        tokenized = [t.masking_tail(t.length - n) for t, n in zip(tokenized, lengths)]
    left = unpadded in ("left", "masked left")
    if left:
        # Flux.2 dev: the model zero-pads each context on the left to 512 tokens and sees those rows (zero
        # embeddings: all alike). The prompts get that padding here, so the batch is what the model sees for
        # each prompt alone, and the padding is PAD (mapped pad to pad, left to the model).
        # Lumina 2: zero-padded to the longest, before the words (its RoPE numbers caption tokens from the
        # first and places the image after the last: relative positions stay each prompt's own), MASKED
        # (dit_runtime masks it in the joint and the text-only calls): each prompt renders as alone.
        width, role = (_left_padded_width(texts, lengths), PAD) if unpadded == "left" else (max(lengths), MASKED)
        conds = [torch.nn.functional.pad(c, (0, 0, width - c.shape[1], 0)) for c in conds]
        tokenized = [t.left_padded(width - n, role) for t, n in zip(tokenized, lengths)]
    _refuse_no_op_edits(clip, tokenized, conds, pooled)
    # the source as CLIPTextEncode gives it: its own length (Chroma: without the zero padding; Flux.2 dev:
    # the model pads it), the pooled output's key even when it is None (Chroma's Flux base reads it)
    source_cond = conds[0][:, -lengths[0]:] if left else conds[0][:, : lengths[0]] if unpadded else conds[0]
    prompts = PromptSet(prompts=tuple(tokenized), source_conditioning=[[source_cond, {"pooled_output": pooled[0]}]])
    extra = {COND_UID_KEY: prompts.uid}
    if mask is not None:
        extra["attention_mask"] = mask
    if all(p is not None for p in pooled):
        extra["pooled_output"] = torch.cat(pooled)
    elif all(p is None for p in pooled):
        extra["pooled_output"] = None  # as CLIPTextEncode's conditioning (Chroma's Flux base reads the key)
    return [[torch.cat(conds), extra]], prompts


def _masked_padding(streams, tokenized, masks):
    """A text encoder that trims a chat template's head after encoding and masks padding (Qwen-Image's: a
    single prompt is never padded, the model masks padding): the padding that batches the prompts to one
    length is MASKED, and its attention mask goes with the conditioning (ComfyUI 0.33.0's Qwen-Image reads
    it; dit_runtime masks it on every ComfyUI). Other encoders' padding stays what their models see.
    -> (tokenized, attention mask [1+N, L] long or None)."""
    trimmed = [sum(s.length for s in st.values()) > t.length for st, t in zip(streams, tokenized)]
    if not any(m is not None for m in masks) or not all(trimmed):
        return tokenized, None
    rows = [torch.ones(t.length, dtype=torch.long) if m is None else m.reshape(-1).long().cpu()
            for t, m in zip(tokenized, masks)]
    if any(r.shape[0] != t.length for r, t in zip(rows, tokenized)):
        return tokenized, None
    tokenized = [t.masking_tail(int((r == 0).sum())) for t, r in zip(tokenized, rows)]
    return tokenized, torch.stack(rows)


def _unpadded(clip, token_dicts) -> str | None:
    """Whether the context is one stream whose tokenizer does not pad prompts to a common length, and on
    which side each prompt's encoding is then zero-padded: "right" for a T5 stream (ComfyUI's PixArt T5,
    Chroma's): tokenize_streams padded the prompts to one length with the pad token for their word
    positions; such a model sees each prompt unpadded, a pad token changes its image; "masked left" for a
    whitespace-keeping SentencePiece stream (Lumina 2's Gemma 2: each prompt tokenized at its own length, the
    padding before it and masked); "left" for a
    left-padding chat-template stream (Flux.2 dev's Mistral 3 Small: each prompt tokenized at its own
    length; its model zero-pads the context on the left, LEFT_PADDED_CONTEXT); else None."""
    streams = [k for k, v in token_dicts[0].items() if isinstance(v, list) and v and isinstance(v[0], list)]
    if len(streams) != 1:
        return None
    sub = _sub_tokenizer(clip, streams[0])
    if pads_prompts(sub):
        return None
    if streams == [T5_KEY]:
        return "right"
    if spiece_keys(clip, token_dicts[0]) == streams:
        return "masked left"
    return "left" if zero_padded_left(sub) and template_of(clip) is not None else None


def _left_padded_width(texts: list[str], lengths: list[int]) -> int:
    """The context length of a left-padded batch: the model's (512), or the longest prompt's. An edit
    longer than both the 512 and the source would pad the source beyond what the model sees for it alone
    (the source item would no longer be the plain image): refused with the lengths."""
    own = max(LEFT_PADDED_CONTEXT, lengths[0])
    for i, n in enumerate(lengths[1:], start=1):
        if n > own:
            raise P2PError(
                f"edit prompt {i} ({texts[i][:40]!r}...) is {n} tokens long with the text encoder's system prompt, "
                f"longer than the source's context ({own} tokens: the model pads every context to "
                f"{LEFT_PADDED_CONTEXT} tokens, a longer prompt keeps its length). Batched with it, the source "
                f"would be padded beyond what the model sees for it alone. Shorten edit prompt {i} by at least "
                f"{n - own} tokens (or lengthen the source).")
    return own


def _refuse_no_op_edits(clip, tokenized, conds, pooled) -> None:
    """An edit prompt that differs from the source but encodes exactly like it would give back the
    source unchanged: say why (words outside the text encoder's vocabulary) instead. The same prompt
    twice is left alone (it is the base of a reweight)."""
    src = tokenized[0]
    for i, edit in enumerate(tokenized[1:], start=1):
        if edit.ids == src.ids or not torch.equal(conds[i], conds[0]):
            continue
        if pooled[0] is not None and not torch.equal(pooled[i], pooled[0]):
            continue
        words = sorted(set(unknown_words(clip, edit)) | set(unknown_words(clip, src)))
        msg = f"edit prompt {i} ({edit.text!r}) encodes exactly like the source, so it would give the source image back unchanged"
        if words:
            msg += f": {', '.join(repr(w) for w in words)} are outside this model's vocabulary (zero embeddings)"
        raise P2PError(msg + _known_words_hint(clip))
    _refuse_unknown_new_words(clip, tokenized)
    _warn_identical_edits(clip, tokenized, conds, pooled)
    for p in tokenized:
        words = unknown_words(clip, p)
        if words:
            warn("%s in %r are outside this model's vocabulary (zero embeddings) and have no effect.",
                 ", ".join(repr(w) for w in words), p.text)


def _known_words_hint(clip) -> str:
    known = known_vocabulary(clip)
    return ". Change words the model knows" + (f": {', '.join(known)}." if known else ".")


def _refuse_unknown_new_words(clip, tokenized) -> None:
    """A word an edit swaps in or inserts (one the source lacks) that the model cannot represent: the
    edit's tokens there carry nothing, so what the word should draw vanishes instead of changing (e.g.
    'circle' -> 'dog' on the demo model). Refused with the words the model knows. Unknown words the
    source has too are only warned about (they change nothing between source and edit)."""
    source_words = set(tokenized[0].words)
    for i, edit in enumerate(tokenized[1:], start=1):
        new = [w for w in unknown_words(clip, edit) if w not in source_words]
        if new:
            listed = ", ".join(repr(w) for w in new)
            raise P2PError(
                f"edit prompt {i} ({edit.text!r}): {listed} {'is' if len(new) == 1 else 'are'} outside this model's "
                "vocabulary (zero embeddings), so the model cannot draw what the edit puts there: the edited "
                "object would vanish instead of changing" + _known_words_hint(clip))


def _warn_identical_edits(clip, tokenized, conds, pooled) -> None:
    """Edit prompts that differ in text but encode exactly alike give the same image: say which and why."""
    groups: list[list[int]] = []
    for i in range(1, len(tokenized)):
        for group in groups:
            j = group[0]
            if (tokenized[i].ids != tokenized[j].ids and torch.equal(conds[i], conds[j])
                    and (pooled[0] is None or torch.equal(pooled[i], pooled[j]))):
                group.append(i)
                break
        else:
            groups.append([i])
    for group in (g for g in groups if len(g) > 1):
        words = sorted({w for i in group for w in unknown_words(clip, tokenized[i])})
        why = (f": {', '.join(repr(w) for w in words)} are outside this model's vocabulary (zero embeddings)"
               if words else "")
        warn("edit prompts %s encode exactly alike%s, so they will give the same image.", group, why)


def encodes_alike(a: torch.Tensor | None, b: torch.Tensor | None, tolerance: float = 1e-3) -> bool | None:
    """Whether two text contexts ([1, L, D]) encode the same prompt: equal to `tolerance` of their scale
    over the tokens both have (a Prompt Pair pads every prompt to the longest one's chunk count, so the
    source's row may be longer than its own encoding). None when they cannot be compared (no tensor,
    another width: another text encoder, which P2P Apply's sampling check reports)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.ndim != 3 or b.ndim != 3:
        return None
    if a.shape[-1] != b.shape[-1]:
        return None
    n = min(a.shape[1], b.shape[1])
    x, y = a[0, :n].detach().float().cpu(), b[0, :n].detach().float().cpu()
    scale = float(torch.maximum(x.abs().amax(), y.abs().amax()).clamp_min(1e-12))
    if float((x - y).abs().amax()) <= tolerance * scale:
        return True
    longer = a if a.shape[1] > b.shape[1] else b
    if a.shape[1] == b.shape[1] or bool(longer[0, : longer.shape[1] - n].any()):
        return False
    # A context zero-padded on the left (Flux.2 dev: the Prompt Pair's 512 rows, CLIPTextEncode's own length)
    x, y = a[0, -n:].detach().float().cpu(), b[0, -n:].detach().float().cpu()
    scale = float(torch.maximum(x.abs().amax(), y.abs().amax()).clamp_min(1e-12))
    return float((x - y).abs().amax()) <= tolerance * scale


def inversion_positive(positive, prompts):
    """The conditioning an inversion runs under: `positive` (the source prompt encoded on its own, or a
    Prompt Pair's conditioning, whose row 0 is used), else the source row of `prompts` (a PromptSet),
    so the source prompt is written once. Both given: the positive, warned about when it encodes
    another prompt than the prompts' source."""
    source = getattr(prompts, "source_conditioning", None) if prompts is not None else None
    if prompts is not None and source is None:
        raise P2PError("the prompts carry no source conditioning.", fix="inversion_source")
    if positive is None:
        if source is None:
            raise P2PError("no source prompt to invert under: the inversion needs the source prompt's "
                           "conditioning or the prompts.", fix="inversion_source")
        return source
    if source is not None:
        given = positive[0][0] if isinstance(positive, list) and positive and positive[0] else None
        if isinstance(given, torch.Tensor) and encodes_alike(source[0][0], given[:1]) is False:
            warn("the positive prompt is not the prompts' source %r (their text encodings differ); the inversion "
                 "runs under the positive, so the source will not reconstruct the image. Remove the positive to "
                 "invert under the source prompt, or encode the same text.", prompts.source.text)
    return positive


def split_edit_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def latent_batch(latent: dict, n_items: int) -> dict:
    """Repeat a 1-item LATENT to n_items that share one initial noise (equal batch_index)."""
    samples = latent["samples"]
    if samples.shape[0] != 1:
        raise P2PError(f"the input latent has batch {samples.shape[0]}; give it a single image.",
                       fix="single_latent")
    index = latent.get("batch_index", [0])[0]
    out = {**latent, "samples": samples.repeat(n_items, *([1] * (samples.ndim - 1))), "batch_index": [index] * n_items}
    if "noise_mask" in latent:
        mask = latent["noise_mask"]
        out["noise_mask"] = mask.repeat(n_items, *([1] * (mask.ndim - 1))) if mask.shape[0] == 1 else mask
    return out
