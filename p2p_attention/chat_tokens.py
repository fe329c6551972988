"""Word spans of a prompt a chat-template LLM text encoder tokenizes (Z-Image's and Flux.2 klein's
Qwen3: ComfyUI's ZImageTokenizer / KleinTokenizer formats the prompt into its `llama_template` and byte-level-BPE-tokenizes the whole text
as one segment, every token with word id 1).

Byte-level BPE tokens carry the space before a word ("Ġred"), so a word cannot be tokenized on its own
and matched as CLIP's and T5's words are (prompts._build). Instead each token's bytes are read back
(the GPT-2 byte alphabet; added tokens such as <|im_start|> are their own text), the bytes are checked
to spell the templated text exactly, and a token belongs to the word whose bytes it covers. Tokens of
the template before the prompt are START, after it END, the tokenizer's padding PAD (as prompts.py
names CLIP's and T5's specials, so the token mappers pair them alike); whitespace inside the prompt
that no word covers is PAD too.
"""

from __future__ import annotations

import functools
import re

from .errors import P2PError
from .tokenized import END, PAD, START, TokenizedPrompt


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
    and Flux.2 klein's Qwen3). A left-padding one (Flux.2 dev's Mistral 3 Small, whose context the model
    pads again on the left) is refused by name."""
    template = getattr(clip.tokenizer, "llama_template", None)
    if not (isinstance(template, str) and "{}" in template):
        return None
    subs = [getattr(clip.tokenizer, n) for n in dir(clip.tokenizer) if not n.startswith("_")
            and hasattr(getattr(clip.tokenizer, n, None), "tokens_start")]
    if any(getattr(sub, "pad_left", False) for sub in subs):
        raise P2PError("this text encoder (Flux.2 dev's Mistral 3 Small: left padding, a system prompt) is not "
                       "supported by Prompt-to-Prompt yet; Flux.2 klein (Qwen3 text encoder) is.")
    return template


def _token_bytes(hf, tok: int) -> bytes:
    added = getattr(hf, "added_tokens_decoder", {}) or {}
    if tok in added:
        return str(added[tok]).encode("utf-8")
    piece = hf.convert_ids_to_tokens(tok)
    decoder = _byte_decoder()
    try:
        return bytes(decoder[c] for c in piece)
    except (KeyError, TypeError):
        raise P2PError(f"token {tok} ({piece!r}) of this text encoder's tokenizer is not byte-level BPE; "
                       "Prompt-to-Prompt cannot place its words.") from None


def build_templated(text: str, chunks: list[list[tuple]], sub, template: str):
    """The TokenizedPrompt of `text` from the templated tokens ComfyUI's tokenizer returned (one chunk,
    (token, weight, word id) entries; word id 0: padding)."""
    from comfy.sd1_clip import escape_important, unescape_important


    if len(chunks) != 1:
        raise P2PError(f"Prompt {text!r}: the chat-template tokenizer returned {len(chunks)} chunks; expected one.")
    chunk = chunks[0]
    ids = [e[0] for e in chunk]
    if not all(isinstance(t, int) for t in ids):
        raise P2PError(f"Prompt {text!r} uses a textual-inversion embedding; Prompt-to-Prompt cannot locate "
                       "words around embeddings. Write the prompts without 'embedding:' names.")
    seen = lambda s: unescape_important(escape_important(s))  # noqa: E731 - what the tokenizer was given
    prefix, suffix = (seen(part) for part in template.split("{}", 1))
    prompt = seen(text)
    full = (prefix + prompt + suffix).encode("utf-8")
    n_real = max((i + 1 for i, e in enumerate(chunk) if e[2] != 0), default=0)
    spans, at = [], 0
    for tok in ids[:n_real]:
        b = _token_bytes(sub.tokenizer, tok)
        spans.append((at, at + len(b)))
        at += len(b)
    if b"".join(_token_bytes(sub.tokenizer, t) for t in ids[:n_real]) != full:
        raise P2PError(f"Prompt {text!r}: this text encoder's tokens do not spell the prompt in its chat template; "
                       "Prompt-to-Prompt cannot place the words.")
    start = len(prefix.encode("utf-8"))
    end = start + len(prompt.encode("utf-8"))
    words, word_spans = [], []
    for m in re.finditer(r"\S+", prompt):
        words.append(m.group(0).lower())
        word_spans.append((start + len(prompt[: m.start()].encode("utf-8")), start + len(prompt[: m.end()].encode("utf-8"))))
    word_of, special = [-1] * len(ids), [PAD] * len(ids)
    w = 0
    for pos, (lo, hi) in enumerate(spans):
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
