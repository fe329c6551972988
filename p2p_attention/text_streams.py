"""Model adapter for text: which of the tokenizer's streams make up the model's text context, and
in what order, so every context position has its word.

SD1/SDXL: the CLIP stream(s), one layout (CLIP-L and CLIP-G agree on positions). Flux.1: the T5
stream only (CLIP-L gives just the pooled vector). SD3/SD3.5: the CLIP-L/G rows (77 per chunk)
followed by the T5 rows. Qwen-Image: one stream, a chat template around the prompt, whose head the
text encoder trims after encoding: the context is the stream's tail. Which layout a CLIP uses is
read from the encoded context's length, never assumed from a class name (an SD3 text encoder may come without its T5).
Flux.2 dev: one stream (Mistral 3 Small's, a system prompt around the prompt) that its tokenizer never pads
and the model zero-pads on the left (LEFT_PADDED_CONTEXT).
"""

from __future__ import annotations

from .errors import P2PError
from .prompts import T5_KEY, TokenizedPrompt

# The context length a model zero-pads a left-padding text encoder's output to, on the left (Flux.2 dev:
# model_base.Flux2.extra_conds pads cross_attn to 512 tokens; a longer context keeps its length). The only
# left-padding text encoder ComfyUI has (Flux2Tokenizer's Mistral3Tokenizer, pad_left) is Flux.2 dev's.
LEFT_PADDED_CONTEXT = 512


def concat_streams(parts: list[TokenizedPrompt]) -> TokenizedPrompt:
    """One prompt over consecutive streams; mappers work per part (token_maps)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return TokenizedPrompt(
        text=first.text,
        ids=tuple(i for p in parts for i in p.ids),
        word_of=tuple(w for p in parts for w in p.word_of),
        words=first.words,  # the same text: the same whitespace words in every stream
        n_chunks=sum(p.n_chunks for p in parts),
        special=tuple(s for p in parts for s in p.special),
        token_text=tuple(t for p in parts for t in p.token_text),
        chunk_len=0,
        parts=tuple(parts),
    )


def context_layouts(keys: list[str]) -> list[list[str]]:
    """Candidate stream orders of the context, most specific first."""
    clip = [k for k in keys if k != T5_KEY]
    if T5_KEY not in keys:
        return [clip[:1]]
    return [[T5_KEY], clip[:1] + [T5_KEY], clip[:1]] if clip else [[T5_KEY]]


def context_prompt(streams: dict[str, TokenizedPrompt], context_length: int, has_t5: bool = True) -> TokenizedPrompt:
    """The TokenizedPrompt of the context a text encoder produced (`context_length` tokens). An encoder
    without its T5 (SD3 may load without it) still tokenizes for T5: those tokens are not in the context."""
    keys = list(streams)
    for layout in context_layouts(keys):
        if not has_t5 and T5_KEY in layout:
            continue
        if sum(streams[k].length for k in layout) == context_length:
            return concat_streams([streams[k] for k in layout])
    if len(keys) == 1 and streams[keys[0]].length > context_length:
        # One stream, longer than the context: the encoder trimmed a chat template's head (Qwen-Image)
        return streams[keys[0]].tail(context_length)
    sizes = ", ".join(f"{k} {streams[k].length}" for k in keys)
    raise P2PError(f"the text encoder's context has {context_length} tokens, which no combination of its "
                   f"token streams ({sizes}) explains; Prompt-to-Prompt cannot place the words.")
