"""The token mappers of word swap and refinement, following Prompt-to-Prompt (Hertz et al. 2022).

M[i, j] is the weight of source position i in edit position j (A_edit = A_src @ M), alpha[j] = 1
where edit position j takes the source's attention. Specials map chunk by chunk, start to start,
end to end, pad p to pad p, so the tokens after a swapped word of a different length, end-of-text
and padding stay aligned (the official seq_aligner wrote mapper[j, j] there).
"""

from __future__ import annotations

import torch

from .errors import P2PError
from .prompts import END, PAD, START, TokenizedPrompt


def _per_stream(mapper, src: TokenizedPrompt, edit: TokenizedPrompt):
    """A prompt over several streams (SD3: CLIP rows then T5 rows): each stream maps on its own."""
    pairs = [mapper(a, b) for a, b in zip(src.parts, edit.parts)]
    return torch.block_diag(*(m for m, _ in pairs)), torch.cat([a for _, a in pairs])


def _check_pair(src: TokenizedPrompt, edit: TokenizedPrompt) -> None:
    if src.length != edit.length or src.chunk_len != edit.chunk_len:
        raise P2PError(
            f"The source ({src.length} tokens) and edit ({edit.length} tokens) prompts were tokenized "
            "separately; tokenize them together (tokenize_prompts) so they have the same length."
        )


def _map_specials(src: TokenizedPrompt, edit: TokenizedPrompt, M: torch.Tensor, alpha: torch.Tensor) -> None:
    """Chunk by chunk: k-th start -> k-th start, end -> end, pad p -> pad p (the source's last pad,
    else its end, when the source chunk has fewer)."""
    L, n = src.chunk_len, src.n_chunks
    src_roles, edit_roles = src.special, edit.special
    for c in range(n):
        lo, hi = c * L, (c + 1) * L
        slots: dict[str, list[int]] = {START: [], END: [], PAD: []}
        for i in range(lo, hi):
            if src_roles[i] in slots:  # not a word token, nor MASKED batch padding (maps to nothing)
                slots[src_roles[i]].append(i)
        count = {START: 0, END: 0, PAD: 0}
        for j in range(lo, hi):
            role = edit_roles[j]
            if role not in count:
                continue
            k = count[role]
            count[role] += 1
            cands = slots[role]
            if k < len(cands):
                i = cands[k]
            elif cands:
                i = cands[-1]
            else:  # fall back within the chunk: pad -> end, end -> last pad, start -> nothing
                fallback = {PAD: (END,), END: (PAD,), START: ()}[role]
                others = [slots[r][-1] for r in fallback if slots[r]]
                if not others:
                    alpha[j] = 0.0
                    continue
                i = others[0]
            M[i, j] = 1.0


def swap_mapper(src: TokenizedPrompt, edit: TokenizedPrompt) -> tuple[torch.Tensor, torch.Tensor]:
    """Word swap: words correspond by index. Returns M [L, L] float32 (M[i, j] = weight of source
    position i in edit position j) and alpha [L] (ones). A word whose token count differs spreads:
    M[i, j] = 1/len(J) for every source token i and edit token j of the word (the official
    behaviour: each source row sums to 1). Edit positions without any source (a word with no
    tokens in the source) get alpha 0."""
    _check_pair(src, edit)
    if src.parts:
        return _per_stream(swap_mapper, src, edit)
    if len(src.words) != len(edit.words):
        raise P2PError(
            f"Word swap needs the same number of words in both prompts: the source has {len(src.words)}, "
            f"the edit has {len(edit.words)}.", fix="refine_for_word_count",
        )
    n = src.length
    M = torch.zeros(n, n, dtype=torch.float32)
    alpha = torch.ones(n, dtype=torch.float32)
    for src_toks, edit_toks in zip(src.word_positions, edit.word_positions):
        if len(src_toks) == len(edit_toks):
            for i, j in zip(src_toks, edit_toks):
                M[i, j] = 1.0
        elif not src_toks:
            for j in edit_toks:
                alpha[j] = 0.0
        else:
            for j in edit_toks:
                for i in src_toks:
                    M[i, j] = 1.0 / len(edit_toks)
    _map_specials(src, edit, M, alpha)
    return M, alpha


def _global_align(x: list[int], y: list[int]) -> list[tuple[int, int]]:
    """Needleman-Wunsch (gap 0, match 1, mismatch -1) with the official tie order (left, up,
    diagonal); returns the (x index, y index) pairs of matched tokens."""
    n, m = len(x), len(y)
    trace = [bytearray(m + 1) for _ in range(n + 1)]  # 1 left (gap in x), 2 up (gap in y), 3 diagonal
    trace[0][1:] = b"\x01" * m
    prev = [0] * (m + 1)
    for i in range(1, n + 1):
        row = trace[i]
        row[0] = 2
        cur = [0] * (m + 1)
        xi = x[i - 1]
        for j in range(1, m + 1):
            left = cur[j - 1]
            up = prev[j]
            diag = prev[j - 1] + (1 if xi == y[j - 1] else -1)
            if left >= up and left >= diag:
                cur[j], row[j] = left, 1
            elif up >= diag:
                cur[j], row[j] = up, 2
            else:
                cur[j], row[j] = diag, 3
        prev = cur
    pairs = []
    i, j = n, m
    while i > 0 or j > 0:
        t = trace[i][j]
        if t == 3:
            i, j = i - 1, j - 1
            if x[i] == y[j]:
                pairs.append((i, j))
        elif t == 1:
            j -= 1
        else:
            i -= 1
    pairs.reverse()
    return pairs


def refine_mapper(src: TokenizedPrompt, edit: TokenizedPrompt) -> tuple[torch.Tensor, torch.Tensor]:
    """Refinement: global alignment of the two prompts' word-token id sequences (across chunks).
    Each edit token aligned to a source token maps to it one-to-one with alpha 1; inserted edit
    tokens get alpha 0 and an all-zero column; deleted source tokens an all-zero row. Specials are
    mapped as in swap_mapper."""
    _check_pair(src, edit)
    if src.parts:
        return _per_stream(refine_mapper, src, edit)
    n = src.length
    M = torch.zeros(n, n, dtype=torch.float32)
    alpha = torch.ones(n, dtype=torch.float32)
    src_pos = [p for p, w in enumerate(src.word_of) if w >= 0]
    edit_pos = [p for p, w in enumerate(edit.word_of) if w >= 0]
    for p in edit_pos:
        alpha[p] = 0.0
    pairs = _global_align([src.ids[p] for p in src_pos], [edit.ids[p] for p in edit_pos])
    for a, b in pairs:
        M[src_pos[a], edit_pos[b]] = 1.0
        alpha[edit_pos[b]] = 1.0
    _map_specials(src, edit, M, alpha)
    return M, alpha
