"""Prompt tokenization with word spans, on ComfyUI's own tokenizers.

ComfyUI's tokenizer (comfy/sd1_clip.py SDTokenizer.tokenize_with_weights) gives every weighted
segment one "word id", so its ids cannot locate words. Here each prompt is tokenized with
ComfyUI's own tokenizer (the tokens the text encoder sees), and the whitespace words of the
weight-stripped text are tokenized one by one with the same HF tokenizer and matched, in order,
against the non-special tokens. Every token position is then either a word token or a special
(start / end / pad of its 77-token chunk).

The token mappers of word swap and refinement are in token_maps.py.
"""

from __future__ import annotations

from .chat_tokens import build_templated, template_of
from .errors import P2PError
from .spiece_tokens import build_spiece, spiece_keys
from .tokenized import (  # noqa: F401  (the prompt types live there)
    END,
    MASKED,
    PAD,
    START,
    T5_KEY,
    TokenizedPrompt,
)

# ----------------------------------------------------------------------------- tokenization


def _sub_tokenizer(clip, key: str):
    """The comfy SDTokenizer behind one key of clip.tokenize's output ("l" -> clip.tokenizer.clip_l)."""
    tok = clip.tokenizer
    for name in (f"clip_{key}", key):
        sub = getattr(tok, name, None)
        if sub is not None and hasattr(sub, "tokenizer") and hasattr(sub, "tokens_start"):
            return sub
    raise P2PError(
        f"Prompt-to-Prompt supports CLIP and T5 text encoders (SD1.x, SDXL, Flux.1, SD3); this CLIP's "
        f"tokenizer ({type(tok).__name__}, key {key!r}) is not one of them."
    )


def _word_pieces(text: str) -> list[list[str]]:
    """Whitespace words of the weight-stripped text, each as its pieces (one per weighted segment it
    spans, tokenized separately by ComfyUI: "(red:1.2)cat" is one word of two pieces)."""
    from comfy.sd1_clip import escape_important, token_weights, unescape_important

    words: list[list[str]] = []
    joinable = False  # the previous segment ended inside a word
    for segment, _weight in token_weights(escape_important(text), 1.0):
        seg = unescape_important(segment)
        parts = seg.split()
        if not parts:
            joinable = False
            continue
        if joinable and not seg[0].isspace():
            words[-1].append(parts[0])
            parts = parts[1:]
        words.extend([p] for p in parts)
        joinable = not seg[-1].isspace()
    return words


def _word_tokens(sub, piece: str) -> list[int]:
    ids = sub.tokenizer(piece)["input_ids"]
    end = -1 if sub.tokenizer_adds_end_token else None
    return list(ids[sub.tokens_start : end])


def _token_label(sub, tok: int, role: str) -> str:
    if role == PAD:
        return "<pad>"
    text = sub.inv_vocab.get(tok, str(tok)) if hasattr(sub, "inv_vocab") else str(tok)
    return text[:-4] if text.endswith("</w>") else text


def _build(text: str, chunks: list[list[tuple]], sub) -> TokenizedPrompt:
    chunk_len = len(chunks[0])
    if any(len(c) != chunk_len for c in chunks):
        raise P2PError(f"Prompt {text!r}: the tokenizer returned chunks of unequal length.")
    ids: list[int] = []
    specials: list[str] = []
    content_ids: list[int] = []
    content_pos: list[int] = []
    start_tok = getattr(sub, "start_token", None)
    end_tok = getattr(sub, "end_token", None)
    for chunk in chunks:
        seen_content = seen_end = False
        for entry in chunk:
            tok, wid = entry[0], entry[2]
            if not isinstance(tok, int):
                raise P2PError(
                    f"Prompt {text!r} uses a textual-inversion embedding; Prompt-to-Prompt cannot locate "
                    "words around embeddings. Write the prompts without 'embedding:' names."
                )
            pos = len(ids)
            ids.append(tok)
            if wid != 0:
                specials.append("")
                content_ids.append(tok)
                content_pos.append(pos)
                seen_content = True
            elif not seen_content and not seen_end and tok == start_tok and start_tok is not None:
                specials.append(START)
            elif not seen_end and (tok == end_tok or end_tok is None):
                specials.append(END)
                seen_end = True
            else:
                specials.append(PAD)

    pieces = _word_pieces(text)
    words = tuple("".join(p).lower() for p in pieces)
    word_of = [-1] * len(ids)
    k = 0
    for w, word_pieces in enumerate(pieces):
        toks = [t for piece in word_pieces for t in _word_tokens(sub, piece)]
        if content_ids[k : k + len(toks)] != toks:
            hint = " (an 'embedding:' name?)" if "embedding:" in text else ""
            raise P2PError(
                f"Prompt {text!r}: cannot locate the word {words[w]!r}{hint} in ComfyUI's tokens; "
                "Prompt-to-Prompt needs plain text prompts (weights like (word:1.2) are fine)."
            )
        for _ in toks:
            word_of[content_pos[k]] = w
            k += 1
    if k != len(content_ids):
        raise P2PError(
            f"Prompt {text!r}: ComfyUI's tokens contain {len(content_ids) - k} token(s) that belong to no "
            "word (an 'embedding:' name?); Prompt-to-Prompt needs plain text prompts."
        )
    labels = tuple(_token_label(sub, t, r) for t, r in zip(ids, specials))
    return TokenizedPrompt(
        text=text,
        ids=tuple(ids),
        word_of=tuple(word_of),
        words=words,
        n_chunks=len(chunks),
        special=tuple(specials),
        token_text=labels,
        chunk_len=chunk_len,
    )


def _is_chunk_list(value) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(isinstance(c, list) for c in value)


def pads_prompts(sub) -> bool:
    """Whether ComfyUI's tokenizer pads a prompt (to its max or min length). One that does not (Chroma's T5,
    Qwen-Image's and Flux.2 dev's LLM tokenizers: min_length 1) gives its text encoder each prompt unpadded."""
    return bool(getattr(sub, "pad_to_max_length", True)) or (getattr(sub, "min_length", None) or 0) > 1


def zero_padded_left(sub) -> bool:
    """A tokenizer that never pads and would pad on the left (Flux.2 dev's Mistral3Tokenizer): its model
    zero-pads the encoded context on the left instead (conditioning.encode_prompt_set adds that padding)."""
    return not pads_prompts(sub) and bool(getattr(sub, "pad_left", False))


def _equal_length_tokens(clip, texts: list[str], raw: list[dict], templated: bool = False) -> list[dict]:
    """Re-tokenize so single-chunk streams (T5; a chat-template LLM's when `templated`) have one length
    across prompts (a long prompt grows past the minimum length, a short one is padded with the
    tokenizer's pad token); the encoded contexts then concatenate into one batch. A chat-template stream
    whose tokenizer zero-pads on the left (zero_padded_left: Flux.2 dev's) keeps each prompt's own length, as
    Lumina 2's SentencePiece stream does: its contexts are zero-padded after encoding (conditioning.encode_prompt_set)."""
    longest = {}
    for r in raw:
        for k, v in r.items():
            if not (isinstance(v, list) and len(v) == 1 and isinstance(v[0], list)):
                continue
            if k == T5_KEY or (templated and not zero_padded_left(_sub_tokenizer(clip, k))):
                longest[k] = max(longest.get(k, 0), len(v[0]))
    if not longest or all(len(r[k][0]) == n for r in raw for k, n in longest.items()):
        return raw
    options = {f"{k}_min_length": n for k, n in longest.items()}
    return [clip.tokenize(t, return_word_ids=True, tokenizer_options=options) for t in texts]


def tokenize_prompts(clip, texts: list[str]) -> tuple[list[dict], list[TokenizedPrompt]]:
    """tokenize_streams, with the TokenizedPrompts of the first stream (a CLIP-only text encoder)."""
    token_dicts, streams = tokenize_streams(clip, texts)
    return token_dicts, [next(iter(s.values())) for s in streams]


def tokenize_streams(clip, texts: list[str]) -> tuple[list[dict], list[dict[str, TokenizedPrompt]]]:
    """Tokenize each text with ComfyUI's tokenizer (clip.tokenize) and pad every prompt to the same
    number of chunks with the tokenizer's own chunk of "" (per key), and T5 streams to one length, so
    the encoded conditionings concatenate into one batch. Returns the per-prompt token dicts (for
    clip.encode_from_tokens(tokens, return_pooled=True)) and, per prompt, a TokenizedPrompt per
    stream: the CLIP keys agree on where the word tokens are (one is kept), T5 has its own."""
    raw = [clip.tokenize(t, return_word_ids=True) for t in texts]
    if not raw:
        return [], []
    template = template_of(clip)  # a chat-template LLM encoder (Z-Image's Qwen3): words by their bytes
    spiece = spiece_keys(clip, raw[0])  # a whitespace-keeping SentencePiece encoder (Lumina 2's Gemma 2): the same
    # (its prompts keep their own lengths: conditioning.encode_prompt_set pads their contexts on the left)
    raw = _equal_length_tokens(clip, texts, raw, templated=template is not None)
    keys = [k for k, v in raw[0].items() if _is_chunk_list(v)]
    if not keys:
        raise P2PError("Prompt-to-Prompt: this CLIP's tokenizer output has no token chunks.")
    empty = clip.tokenize("", return_word_ids=True)
    for k in keys:
        n_chunks = max(len(r[k]) for r in raw)
        for r in raw:
            while len(r[k]) < n_chunks:
                r[k].append(list(empty[k][0]))

    clip_keys = [k for k in keys if k != T5_KEY]
    streams = []
    for text, r in zip(texts, raw):
        if clip_keys:
            first = clip_keys[0]
            layout = [[e[2] != 0 for e in c] for c in r[first]]
            for k in clip_keys[1:]:
                if [[e[2] != 0 for e in c] for c in r[k]] != layout:
                    raise P2PError(
                        f"Prompt {text!r}: the text encoders {first!r} and {k!r} place the words at different "
                        "token positions; Prompt-to-Prompt needs them aligned."
                    )
        kept = clip_keys[:1] + [k for k in keys if k == T5_KEY]
        if template is not None:
            streams.append({k: build_templated(text, r[k], _sub_tokenizer(clip, k), template) for k in kept})
        elif spiece:
            streams.append({k: build_spiece(text, r[k], _sub_tokenizer(clip, k)) for k in kept})
        else:
            streams.append({k: _build(text, r[k], _sub_tokenizer(clip, k)) for k in kept})

    token_dicts = []
    for r in raw:
        d = {}
        for k, v in r.items():
            if k in keys:
                d[k] = [[tuple(e[:2]) if isinstance(e, tuple) and len(e) == 3 else e for e in c] for c in v]
            else:
                d[k] = v
        token_dicts.append(d)
    return token_dicts, streams


# ----------------------------------------------------------------------------- mappers


def words_available(prompts) -> str:
    """ "Words available: ..." for an error about a word no prompt has (sorted, each word once)."""
    return "Words available: " + ", ".join(sorted({w for p in prompts for w in p.words})) + "."
