"""Word spans of a prompt a chat-template LLM text encoder tokenizes (Z-Image's and Flux.2 klein's
Qwen3, Flux.2 dev's Mistral 3 Small: ComfyUI's ZImageTokenizer / KleinTokenizer / Flux2Tokenizer formats
the prompt into its `llama_template` and byte-level-BPE-tokenizes the whole text as one segment, every
token with word id 1; Mistral's tokenizer puts its start token, word id 0, before it).

Byte-level BPE tokens carry the space before a word ("Ġred"), so a word cannot be tokenized on its own
and matched as CLIP's and T5's words are (prompts._build). Instead each token's bytes are read back
(the GPT-2 byte alphabet; added tokens such as <|im_start|> are their own text), the bytes are checked
to spell the templated text exactly, and a token belongs to the word whose bytes it covers. Tokens of
the template before the prompt (and the tokenizer's start token) are START, after it END, the
tokenizer's padding (before or after the text) PAD (as prompts.py names CLIP's and T5's specials, so the
token mappers pair them alike); whitespace inside the prompt that no word covers is PAD too.
"""

from __future__ import annotations

import functools
import weakref

from .errors import P2PError
from .tokenized import END, PAD, START, TokenizedPrompt, single_chunk_ids, word_byte_spans


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet (printable bytes as themselves, the others shifted past 255)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def template_of(clip) -> str | None:
    """The chat template the CLIP's tokenizer formats every prompt into ("...{}..."), or None (Z-Image's
    and Flux.2 klein's Qwen3, Flux.2 dev's Mistral 3 Small with its system prompt)."""
    template = getattr(clip.tokenizer, "llama_template", None)
    return template if isinstance(template, str) and "{}" in template else None


_INVERSE_VOCABS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _piece(hf, tok: int):
    """The byte-level BPE piece of token `tok`: transformers' tokenizers name it (convert_ids_to_tokens),
    ComfyUI's own BPETokenizer (Mistral's on 0.33.0) through its vocabulary, inverted once."""
    if hasattr(hf, "convert_ids_to_tokens"):
        return hf.convert_ids_to_tokens(tok)
    if hf not in _INVERSE_VOCABS:
        _INVERSE_VOCABS[hf] = {i: p for p, i in hf.get_vocab().items()}
    return _INVERSE_VOCABS[hf].get(tok)


def _token_bytes(hf, tok: int) -> bytes:
    """The bytes of token `tok` of ComfyUI's tokenizer object `hf` (an SDTokenizer's .tokenizer): an added
    token (<|im_start|>, [INST]) is its own text, any other its byte-level BPE piece."""
    added = getattr(hf, "added_tokens_decoder", {}) or {}
    if tok in added:
        return str(added[tok]).encode("utf-8")
    piece = _piece(hf, tok)
    decoder = _byte_decoder()
    try:
        return bytes(decoder[c] for c in piece)
    except (KeyError, TypeError):
        raise P2PError(f"token {tok} ({piece!r}) of this text encoder's tokenizer is not byte-level BPE; "
                       "Prompt-to-Prompt cannot place its words.") from None


def build_templated(text: str, chunks: list[list[tuple]], sub, template: str):
    """The TokenizedPrompt of `text` from the templated tokens ComfyUI's tokenizer returned (one chunk,
    (token, weight, word id) entries; word id 0: the tokenizer's start token and padding, either side)."""
    from comfy.sd1_clip import escape_important, unescape_important


    chunk, ids = single_chunk_ids(text, chunks, "chat-template tokenizer")
    seen = lambda s: unescape_important(escape_important(s))  # noqa: E731 - what the tokenizer was given
    prefix, suffix = (seen(part) for part in template.split("{}", 1))
    prompt = seen(text)
    full = (prefix + prompt + suffix).encode("utf-8")
    text_at = [i for i, e in enumerate(chunk) if e[2] != 0]  # the templated text's tokens, in one run
    lo_tok, hi_tok = (text_at[0], text_at[-1] + 1) if text_at else (0, 0)
    spans, at = [(0, 0)] * lo_tok, 0
    for tok in ids[lo_tok:hi_tok]:
        b = _token_bytes(sub.tokenizer, tok)
        spans.append((at, at + len(b)))
        at += len(b)
    if b"".join(_token_bytes(sub.tokenizer, t) for t in ids[lo_tok:hi_tok]) != full or len(text_at) != hi_tok - lo_tok:
        raise P2PError(f"Prompt {text!r}: this text encoder's tokens do not spell the prompt in its chat template; "
                       "Prompt-to-Prompt cannot place the words.")
    start = len(prefix.encode("utf-8"))
    end = start + len(prompt.encode("utf-8"))
    words, word_spans = word_byte_spans(prompt, start)
    word_of, special = [-1] * len(ids), [PAD] * len(ids)
    start_token = getattr(sub, "start_token", None)
    if lo_tok > 0 and start_token is not None and ids[lo_tok - 1] == start_token:
        special[lo_tok - 1] = START  # the tokenizer's start token (Mistral's BOS), after any left padding
    w = 0
    for pos, (lo, hi) in enumerate(spans):
        if pos < lo_tok:
            continue
        while w < len(word_spans) and word_spans[w][1] <= lo:
            w += 1
        if w < len(word_spans) and word_spans[w][0] < hi:
            word_of[pos], special[pos] = w, ""
        elif hi <= start:
            special[pos] = START
        elif lo >= end:
            special[pos] = END
    missing = [words[i] for i in range(len(words)) if i not in set(word_of)]
    if missing:
        raise P2PError(f"Prompt {text!r}: cannot locate the word(s) {', '.join(map(repr, missing))} in ComfyUI's tokens.")
    # Readable labels (the maps' captions): each token's own text ("Ġred" reads " red").
    labels = tuple("<pad>" if r == PAD else _token_bytes(sub.tokenizer, t).decode("utf-8", "replace")
                   for t, r in zip(ids, special))
    return TokenizedPrompt(text=text, ids=tuple(ids), word_of=tuple(word_of), words=tuple(words), n_chunks=1,
                           special=tuple(special), token_text=labels, chunk_len=len(ids))
