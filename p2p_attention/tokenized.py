"""A tokenized prompt: its tokens, which word each token belongs to, and what the others are (start,
end, pad); written by prompts.py (CLIP, T5) and chat_tokens.py (chat-template LLM encoders)."""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass

from .errors import P2PError

START, END, PAD = "start", "end", "pad"
# Padding that only batches prompts of unequal length, where the text encoder masks it and the model never
# sees padding of one prompt (Qwen-Image): masked out of attention (TokenizedPrompt.n_masked), mapped to nothing.
MASKED = "masked"
T5_KEY = "t5xxl"  # the T5 stream of clip.tokenize (Flux.1, SD3): one chunk, its own word positions

_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_ALNUM = re.compile(r"[^\W_]")


def _core(word: str) -> str:
    """Lowercased word without surrounding punctuation ("Cat," -> "cat")."""
    return _EDGE_PUNCT.sub("", word.lower())


@dataclass(frozen=True)
class TokenizedPrompt:
    text: str
    ids: tuple[int, ...]  # flat token ids over all chunks (first tokenizer key)
    word_of: tuple[int, ...]  # per position: index into `words`, or -1 for start/end/pad
    words: tuple[str, ...]  # whitespace words, weight syntax removed, lowercased
    n_chunks: int
    # Additions (defaults keep the documented constructor working):
    special: tuple[str, ...] = ()  # per position: "" for word tokens, else "start" / "end" / "pad"
    token_text: tuple[str, ...] = ()  # per position: readable token ("cat", ",", "<|endoftext|>", "<pad>")
    chunk_len: int = 77  # 0 for a prompt over several streams
    parts: tuple = ()  # the streams' own TokenizedPrompts (text_streams.concat_streams), else ()

    @property
    def length(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def masked_positions(self) -> tuple[int, ...]:
        """The MASKED positions (batch padding the attention must not see), after or before the prompt."""
        return tuple(i for i, s in enumerate(self.special) if s == MASKED)

    @property
    def n_masked(self) -> int:
        return len(self.masked_positions)

    @functools.cached_property
    def word_positions(self) -> tuple[tuple[int, ...], ...]:
        """Token positions of each word, in order (a word may span a chunk boundary)."""
        out: list[list[int]] = [[] for _ in self.words]
        for pos, w in enumerate(self.word_of):
            if w >= 0:
                out[w].append(pos)
        return tuple(tuple(p) for p in out)

    def tail(self, n: int) -> TokenizedPrompt:
        """The last n positions: the context of a text encoder that trims a template's head after
        encoding (Qwen-Image). Only template tokens may be dropped."""
        cut = self.length - n
        if cut < 0 or any(w >= 0 for w in self.word_of[:cut]):
            raise P2PError(f"Prompt {self.text!r}: the text encoder's context ({n} tokens) leaves out words of the "
                           "prompt; Prompt-to-Prompt cannot place them.")
        return dataclasses.replace(self, ids=self.ids[cut:], word_of=self.word_of[cut:], special=self.special[cut:],
                                   token_text=self.token_text[cut:], chunk_len=n, parts=())

    def masking_tail(self, n: int) -> TokenizedPrompt:
        """The last n positions (the tokenizer's padding, added only to batch prompts of unequal length)
        marked MASKED: the model never sees them (conditioning.encode_prompt_set, dit_runtime)."""
        if n <= 0:
            return self
        if any(s != PAD for s in self.special[-n:]):
            raise P2PError(f"Prompt {self.text!r}: the text encoder masks tokens that are not padding; "
                           "Prompt-to-Prompt cannot place the words.")
        return dataclasses.replace(self, special=self.special[:-n] + (MASKED,) * n)

    def left_padded(self, n: int, role: str = PAD) -> TokenizedPrompt:
        """n positions of zero context rows before the prompt (conditioning.encode_prompt_set adds them): PAD,
        the rows a model puts there itself (Flux.2 pads its context to 512 on the left), or MASKED, batch
        padding the model never sees (Lumina 2: before the words, so its RoPE positions of words and image
        stay the prompt's own)."""
        if n <= 0:
            return self
        return dataclasses.replace(self, ids=(0,) * n + self.ids, word_of=(-1,) * n + self.word_of,
                                   special=(role,) * n + self.special, token_text=("<pad>",) * n + self.token_text,
                                   chunk_len=self.length + n, parts=())

    def _core_positions(self, w: int, trim: bool) -> list[int]:
        pos = list(self.word_positions[w])
        if not trim or not self.token_text:
            return pos
        keep = [p for p in pos if _ALNUM.search(self.token_text[p])]
        if not keep:
            return pos
        # drop leading/trailing punctuation tokens only ("cat," -> cat; "don't" keeps both)
        lo, hi = pos.index(keep[0]), pos.index(keep[-1])
        return pos[lo : hi + 1]

    def positions_of(self, word: str) -> list[int]:
        """Token positions of every occurrence of `word` (case-insensitive, surrounding punctuation
        ignored, punctuation tokens at the word's edges left out). Several whitespace-separated
        words match as a phrase. [] if absent."""
        query = word.lower().split()
        if not query:
            return []
        cores = [_core(q) for q in query]
        found: set[int] = set()
        n = len(query)
        for s in range(len(self.words) - n + 1):
            ok = True
            for k in range(n):
                w = self.words[s + k]
                if (_core(w) != cores[k]) if cores[k] else (w != query[k]):
                    ok = False
                    break
            if ok:
                for k in range(n):
                    found.update(self._core_positions(s + k, trim=bool(cores[k])))
        return sorted(found)


def single_chunk_ids(text: str, chunks: list[list[tuple]], what: str = "tokenizer") -> tuple[list[tuple], list[int]]:
    """(the chunk, its token ids) of an LLM tokenizer's output for `text`: one chunk of (token, weight,
    word id) entries, plain token ids (a textual-inversion embedding cannot be placed among words)."""
    if len(chunks) != 1:
        raise P2PError(f"Prompt {text!r}: the {what} returned {len(chunks)} chunks; expected one.")
    ids = [e[0] for e in chunks[0]]
    if not all(isinstance(t, int) for t in ids):
        raise P2PError(f"Prompt {text!r} uses a textual-inversion embedding; Prompt-to-Prompt cannot locate "
                       "words around embeddings. Write the prompts without 'embedding:' names.")
    return chunks[0], ids


def word_byte_spans(prompt: str, start: int) -> tuple[list[str], list[tuple[int, int]]]:
    """The prompt's words (lower case) and their byte spans, the prompt starting at byte `start`."""
    words, spans = [], []
    for m in re.finditer(r"\S+", prompt):
        words.append(m.group(0).lower())
        spans.append((start + len(prompt[: m.start()].encode("utf-8")), start + len(prompt[: m.end()].encode("utf-8"))))
    return words, spans

