"""Word spans of a prompt a whitespace-keeping SentencePiece tokenizer makes (Lumina 2's Gemma 2:
ComfyUI's Gemma2BTokenizer, the SentencePiece model carried inside the text-encoder file; BOS 2, no
end token, no padding).

Gemma's SentencePiece model adds no dummy prefix and keeps every space as "▁" on the token after it
("a red" -> "a", "▁red"), so a word tokenized alone ("red") is not the word's tokens inside a prompt
and cannot be matched as T5's words are (prompts._build, whose T5 adds the prefix). Instead each token's
bytes are read back ("▁" a space, "<0xNN>" a byte-fallback byte), checked to spell the weight-stripped
text ComfyUI tokenized exactly, and a token belongs to the word whose bytes it covers.

A Lumina 2 prompt is "<system prompt> <Prompt Start> <prompt>" (ComfyUI's CLIP Text Encode (Lumina 2)
writes it so; its example workflow types it into CLIPTextEncode). The text up to and including
SYSTEM_PROMPT_MARKER is the template head: its tokens are START (as a chat template's head), the words
are the user prompt's. Edits written without a system prompt take the source's (shared_system_prompt),
so source and edits share one head and stay aligned token for token.
"""

from __future__ import annotations

import re

from .errors import P2PError
from .tokenized import END, PAD, START, TokenizedPrompt, single_chunk_ids, word_byte_spans

SYSTEM_PROMPT_MARKER = "<Prompt Start>"
_PROBE = " a  b\tc"  # leading, doubled and tab whitespace: a whitespace-keeping tokenizer spells it back
_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _processor(sub):
    """The sentencepiece processor behind a ComfyUI SDTokenizer (SPieceTokenizer.tokenizer), or None."""
    sp = getattr(getattr(sub, "tokenizer", None), "tokenizer", None)
    return sp if hasattr(sp, "id_to_piece") and hasattr(sp, "is_byte") else None


def keeps_text(sub) -> bool:
    """A SentencePiece tokenizer whose tokens spell the text exactly (no dummy prefix, whitespace kept:
    Gemma's). T5's (a "▁" before the first word, runs of spaces collapsed) is not one."""
    sp = _processor(sub)
    if sp is None:
        return False
    ids = sp.encode(_PROBE, add_bos=False, add_eos=False)
    try:
        return b"".join(_token_bytes(sp, t) for t in ids) == _PROBE.encode("utf-8")
    except P2PError:
        return False


def _token_bytes(sp, tok: int) -> bytes:
    piece = sp.id_to_piece(tok)
    if sp.is_byte(tok):
        m = _BYTE.match(piece)
        if m:
            return bytes([int(m.group(1), 16)])
    if sp.is_control(tok) or sp.is_unknown(tok):
        raise P2PError(f"token {tok} ({piece!r}) of this text encoder's tokenizer stands for no text; "
                       "Prompt-to-Prompt cannot place the words around it.")
    return piece.replace("\u2581", " ").encode("utf-8")


def _stripped(text: str) -> str:
    """The text ComfyUI's tokenizer tokenizes: weight syntax removed ("(red:1.2)" -> "red"), escapes undone."""
    from comfy.sd1_clip import escape_important, token_weights, unescape_important

    return "".join(unescape_important(seg) for seg, _ in token_weights(escape_important(text), 1.0))


def head_of(text: str) -> str:
    """The system-prompt head of a prompt: the text up to and including SYSTEM_PROMPT_MARKER, or ""."""
    at = text.find(SYSTEM_PROMPT_MARKER)
    return "" if at < 0 else text[: at + len(SYSTEM_PROMPT_MARKER)]


def spiece_keys(clip, token_dict: dict) -> list[str]:
    """The keys of clip.tokenize's output made by a whitespace-keeping SentencePiece tokenizer."""
    tok = clip.tokenizer
    out = []
    for key in token_dict:
        for name in (f"clip_{key}", key):
            sub = getattr(tok, name, None)
            if sub is not None and hasattr(sub, "tokens_start"):
                if keeps_text(sub):
                    out.append(key)
                break
    return out


def shared_system_prompt(clip, texts: list[str]) -> list[str]:
    """On a whitespace-keeping SentencePiece encoder (Lumina 2's Gemma 2): the source's system prompt
    (head_of) before every edit written without one; an edit with another system prompt is refused
    (source and edits must share the template head, token for token). Other encoders: texts unchanged."""
    head = head_of(texts[0])
    if not head or not spiece_keys(clip, clip.tokenize(texts[0])):
        return texts
    out = [texts[0]]
    for i, text in enumerate(texts[1:], start=1):
        own = head_of(text)
        if not own:
            out.append(f"{head} {text.lstrip()}")
        elif own == head:
            out.append(text)
        else:
            raise P2PError(f"edit prompt {i} has another system prompt (the text before {SYSTEM_PROMPT_MARKER}) than "
                           f"the source; Prompt-to-Prompt needs one: write it in the source only, the edits take "
                           f"the source's.")
    return out


def build_spiece(text: str, chunks: list[list[tuple]], sub) -> TokenizedPrompt:
    """The TokenizedPrompt of `text` from the tokens ComfyUI's tokenizer returned (one chunk of (token,
    weight, word id) entries; word id 0: the BOS token and the padding)."""
    chunk, ids = single_chunk_ids(text, chunks)
    sp = _processor(sub)
    full = _stripped(text)
    head = _stripped(head_of(text))
    prompt = full[len(head):]
    spans, at, content = [], 0, []
    for e in chunk:
        if e[2] == 0:
            spans.append(None)
            continue
        b = _token_bytes(sp, e[0])
        spans.append((at, at + len(b)))
        content.append(b)
        at += len(b)
    if b"".join(content) != full.encode("utf-8"):
        raise P2PError(f"Prompt {text!r}: this text encoder's tokens do not spell the prompt; Prompt-to-Prompt "
                       "cannot place the words.")
    start = len(head.encode("utf-8"))
    words, word_spans = word_byte_spans(prompt, start)
    word_of, special = [-1] * len(ids), [PAD] * len(ids)
    seen_content = False
    w = 0
    for pos, span in enumerate(spans):
        if span is None:  # BOS before the text, the tokenizer's padding after it
            special[pos] = PAD if seen_content else START
            continue
        seen_content = True
        lo, hi = span
        while w < len(word_spans) and word_spans[w][1] <= lo:
            w += 1
        if w < len(word_spans) and word_spans[w][0] < hi:
            word_of[pos], special[pos] = w, ""
        elif hi <= start:
            special[pos] = START
        elif lo >= word_spans[-1][1] if word_spans else True:
            special[pos] = END
    missing = [words[i] for i in range(len(words)) if i not in set(word_of)]
    if missing:
        raise P2PError(f"Prompt {text!r}: cannot locate the word(s) {', '.join(map(repr, missing))} in ComfyUI's tokens.")
    # Readable labels (the maps' captions): each token's own text ("▁red" reads " red")
    labels = tuple(("<pad>" if r == PAD else "<bos>") if s is None else _token_bytes(sp, t).decode("utf-8", "replace")
                   for t, r, s in zip(ids, special, spans))
    return TokenizedPrompt(text=text, ids=tuple(ids), word_of=tuple(word_of), words=tuple(words), n_chunks=1,
                           special=tuple(special), token_text=labels, chunk_len=len(ids))
