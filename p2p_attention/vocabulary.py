"""Which tokens a text encoder can represent: a token whose embedding row is zero in every token
embedding of the CLIP stack is invisible to the model (the demo model stores only its training
vocabulary). Real checkpoints have no such token, so nothing here fires for them."""

from __future__ import annotations

import torch

_MAX_LISTED = 60  # a vocabulary longer than this is not spelled out in a message


def _token_embeddings(clip) -> list[torch.Tensor]:
    model = getattr(clip, "cond_stage_model", None)
    if model is None:
        return []
    # Weights not materialised here (meta tensors of a lazily loaded or offloaded model) are skipped:
    # the check is a courtesy and must never stop a prompt from encoding.
    return [m.weight for m in model.modules()
            if isinstance(m, torch.nn.Embedding) and m.num_embeddings > 1000 and m.weight.device.type != "meta"]


def unknown_tokens(clip, ids) -> set[int]:
    """The ids among `ids` whose embedding row is zero in every token embedding of the stack."""
    tables = _token_embeddings(clip)
    if not tables:
        return set()
    out = set()
    for i in set(int(t) for t in ids):
        if all(i < w.shape[0] and not bool(w[i].detach().abs().amax() > 0) for w in tables):
            out.add(i)
    return out


def unknown_words(clip, prompt) -> list[str]:
    """Words of a TokenizedPrompt every token of which the model cannot represent."""
    word_ids = {w: [prompt.ids[p] for p in pos] for w, pos in zip(prompt.words, prompt.word_positions)}
    unknown = unknown_tokens(clip, [i for ids in word_ids.values() for i in ids])
    return sorted({w for w, ids in word_ids.items() if ids and all(i in unknown for i in ids)})


def known_vocabulary(clip) -> list[str] | None:
    """The tokens the model can represent, readable, when there are few (else None)."""
    tables = _token_embeddings(clip)
    if not tables:
        return None
    rows = torch.stack([w.detach().abs().amax(-1) > 0 for w in tables if w.shape[0] == tables[0].shape[0]]).any(0)
    ids = torch.nonzero(rows).flatten().tolist()
    if len(ids) > _MAX_LISTED + 2:
        return None
    tok = getattr(getattr(clip.tokenizer, "clip_l", None), "tokenizer", None)
    if tok is None:
        return None
    specials = {getattr(tok, "bos_token_id", None), getattr(tok, "eos_token_id", None), getattr(tok, "pad_token_id", None)}
    words = [tok.convert_ids_to_tokens(i).replace("</w>", "") for i in ids if i not in specials]
    return sorted(w for w in words if w.strip())
