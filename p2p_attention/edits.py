"""Edit plans: what the edit nodes build (P2P_PROMPTS, P2P_EDIT values) and their compiled tensors.

One mechanism serves every control. For each edit item e (prompts 1..N, source is 0) and
cross-attention token j of e, the edited map is

    A_new = tau * [ (beta * (A_src @ M) + (1 - beta) * A_e) * w ] + (1 - tau) * A_e

M maps source tokens to edit tokens (word swap or refinement alignment), beta is the
refinement alpha (0 on inserted tokens), w the reweighting, tau the per-token cross-replace
window at the current step. Expanded, A_new = a1 * (A_src @ M) + a2 * A_e with
a1 = tau*beta*w and a2 = tau*(1-beta)*w + (1-tau): attention is linear in V, so both terms
run on memory-efficient attention without materialising a map (see attention.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

import torch

from .errors import P2PError
from .prompts import TokenizedPrompt, words_available
from .steps import CROSS, SELF, window_active
from .token_maps import refine_mapper, swap_mapper
from .widget_text import check_weight, parse_window, parse_word_weights, parse_word_windows


@dataclass(frozen=True)
class PromptSet:
    """The P2P_PROMPTS value: every prompt of one Prompt Pair node, source first."""

    prompts: tuple[TokenizedPrompt, ...]
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The source prompt's own CONDITIONING (its row of the Prompt Pair's, pooled output included): what an
    # inversion of the source image runs under, and what one made under another prompt is compared with.
    source_conditioning: list | None = field(default=None, compare=False, repr=False)

    @property
    def source(self) -> TokenizedPrompt:
        return self.prompts[0]

    @property
    def edits(self) -> tuple[TokenizedPrompt, ...]:
        return self.prompts[1:]

    @property
    def n_edits(self) -> int:
        return len(self.prompts) - 1

    @property
    def length(self) -> int:
        return self.source.length


@dataclass(frozen=True)
class EditPlan:
    """The P2P_EDIT value. Immutable: stacking a control returns a new plan."""

    prompts: PromptSet
    mode: str = "none"  # "swap" | "refine" | "none" (reweight only: refinement alignment as base)
    cross_windows: dict = field(default_factory=lambda: {"default": (0.0, 0.8)})
    self_window: tuple[float, float] = (0.0, 0.4)
    weights: dict = field(default_factory=dict)
    blend: object | None = None  # LocalBlend settings (blend.py), stacked like the others
    # compile_plan's results by own_changed: make_plan compiles to validate, apply_edit reuses it. Not an
    # init field, so dataclasses.replace (stacking a control) starts the new plan with an empty cache.
    _compiled: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def compiled(self, own_changed: bool = False) -> CompiledEdit:
        """compile_plan(self, own_changed), compiled once per plan and setting (the plan is immutable)."""
        if own_changed not in self._compiled:
            self._compiled[own_changed] = compile_plan(self, own_changed=own_changed)
        return self._compiled[own_changed]


def make_plan(
    prompts: PromptSet,
    incoming: EditPlan | None,
    mode: str | None,
    cross_replace: str,
    self_replace: str,
    weights_text: str = "",
) -> EditPlan:
    """Validate one edit control's inputs and stack them on `incoming`."""
    _check_same_prompts(prompts, incoming)
    cross = parse_word_windows(cross_replace, "cross_replace")
    self_w = parse_window(self_replace, "self_replace")
    weights = parse_word_weights(weights_text, "weights") if weights_text.strip() else {}
    if mode is None and not weights:  # a reweight control without a weight would change nothing
        raise P2PError("weights is empty; write 'word: weight' pairs such as 'fluffy: 2, red: -1'.")
    base = incoming or EditPlan(prompts=prompts)
    new_mode = base.mode
    if mode is not None:
        if base.mode != "none":
            raise P2PError(f"the incoming edit is already a {base.mode}; a plan has one swap or refinement.",
                           fix="one_base_edit")
        new_mode = mode
    merged = dict(base.weights)
    for word, w in weights.items():
        merged[word] = check_weight(merged.get(word, 1.0) * w, f"weights: {word!r} stacked on the incoming edit")
    plan = replace(
        base,
        mode=new_mode,
        cross_windows=cross,
        self_window=self_w,
        weights=merged,
    )
    plan.compiled()  # validate now, at the node, not during sampling (apply_edit reuses it)
    return plan


def _check_same_prompts(prompts, incoming: EditPlan | None) -> None:
    if not isinstance(prompts, PromptSet):
        raise P2PError("'prompts' is not a prompt set.", fix="prompt_pair")
    if incoming is not None and incoming.prompts.uid != prompts.uid:
        raise P2PError("the incoming edit was built from other prompts than 'prompts'.", fix="same_prompt_pair")


def with_blend(incoming: EditPlan | None, prompts: PromptSet, blend) -> EditPlan:
    """Stack a LocalBlendSpec on an edit (or on an identity edit, for a blend-only run)."""
    _check_same_prompts(prompts, incoming)
    base = incoming or EditPlan(prompts=prompts, cross_windows={"default": (0.0, 0.0)}, self_window=(0.0, 0.0))
    return replace(base, blend=blend)


@dataclass(frozen=True)
class CrossCoefficients:
    """One step's cross-attention edit: out = (a1 * (A_src @ M) + a2 * A_e) V_e."""

    M: torch.Tensor  # [N, Lk, Lk], tiled to the context length
    a1: torch.Tensor  # [N, Lk]
    a2: torch.Tensor  # [N, Lk]
    uses_source: bool  # any a1 != 0
    uses_own: bool  # any a2 != 0


@dataclass
class CompiledEdit:
    """Per-edit-item tensors at the prompts' token length L (tiled to the context at use)."""

    M: torch.Tensor  # [N, L, L]
    beta: torch.Tensor  # [N, L]
    w: torch.Tensor  # [N, L]
    windows: tuple[tuple[float, float], ...]  # the distinct cross windows of the plan
    window_id: torch.Tensor  # [N, L] long: each token's window in `windows`
    self_window: tuple[float, float]
    changed_src: torch.Tensor | None = None  # [N, L] bool: source word tokens the edit changes
    changed_edit: torch.Tensor | None = None  # [N, L] bool: edit word tokens that are new or reweighted
    _cache: dict = field(default_factory=dict)

    @property
    def n_edits(self) -> int:
        return self.M.shape[0]

    def cross_coefficients(self, step: int, n_steps: int, ctx_len: int, device, dtype):
        """This step's CrossCoefficients, or None when no token is replaced."""
        key = (step, n_steps, ctx_len, str(device), dtype)
        if self._cache.get("coeff_key") != key:  # once per step, not once per layer
            self._cache["coeff_key"] = key
            self._cache["coeff"] = self._coefficients(step, n_steps, ctx_len, device, dtype)
        return self._cache["coeff"]

    def _coefficients(self, step: int, n_steps: int, ctx_len: int, device, dtype):
        active = torch.tensor([float(window_active(w, step, n_steps, CROSS)) for w in self.windows])
        tau = active[self.window_id]
        if not bool(tau.any()):  # outside every window the edit item attends on its own
            return None
        a1 = tau * self.beta * self.w
        a2 = tau * (1 - self.beta) * self.w + (1 - tau)
        reps = ctx_len // self.M.shape[-1]
        m = self._tiled_mapper(reps, device, dtype)
        # The booleans are decided here, on the CPU, so attention never syncs a device to ask.
        return CrossCoefficients(
            m, a1.repeat(1, reps).to(device, dtype), a2.repeat(1, reps).to(device, dtype),
            bool((a1 != 0).any()), bool((a2 != 0).any()),
        )

    def _tiled_mapper(self, reps: int, device, dtype) -> torch.Tensor:
        key = ("mapper", reps, str(device), dtype)
        if key not in self._cache:
            # Context repeated r times (cond/uncond length LCM): token t sits at t + L*m, each copy
            # carries 1/r of the attention, so the mapper is block-diagonal.
            eye = torch.eye(reps, dtype=self.M.dtype)
            tiled = torch.stack([torch.kron(eye, m) for m in self.M])
            self._cache[key] = tiled.to(device=device, dtype=dtype)
        return self._cache[key]

    def self_active(self, step: int, n_steps: int) -> bool:
        return window_active(self.self_window, step, n_steps, SELF)


def unchanged_edits(plan: EditPlan, compiled: CompiledEdit) -> list[int]:
    """Edit items (1..N) that will certainly come out as the source: the same tokens as the source
    and no word reweighted (the same noise and the same attention give the same image)."""
    src = plan.prompts.source
    return [i for i, edit in enumerate(plan.prompts.edits, start=1)
            if edit.ids == src.ids and bool((compiled.w[i - 1] == 1).all())]


def changed_tokens(src: TokenizedPrompt, edit: TokenizedPrompt, M: torch.Tensor):
    """(source word tokens, edit word tokens) the edit changes, [L] bool each: a word token is kept
    when the mapper ties it one-to-one to a token of the same id on the other side (an unchanged word),
    changed otherwise (a swapped, inserted or deleted word, or one whose tokens spread)."""
    same = (M == 1) & (torch.tensor(src.ids)[:, None] == torch.tensor(edit.ids)[None, :])
    src_word = torch.tensor([w >= 0 for w in src.word_of])
    edit_word = torch.tensor([w >= 0 for w in edit.word_of])
    return src_word & ~same.any(1), edit_word & ~same.any(0)


def compile_plan(plan: EditPlan, own_changed: bool = False) -> CompiledEdit:
    """The plan's tensors. own_changed (MM-DiT): changed edit tokens keep their own image->text maps
    (beta 0) instead of the source's: on joint attention the new word's look rides on which heads
    attend to it, which its own keys decide (README, MM-DiT design)."""
    ps = plan.prompts
    src = ps.source
    Ms, betas, ws, window_ids, ch_src, ch_edit = [], [], [], [], [], []
    windows = [plan.cross_windows["default"]]
    found_weights = {word: False for word in plan.weights}
    found_windows = {word: False for word in plan.cross_windows if word != "default"}
    for i, edit in enumerate(ps.edits, start=1):
        try:
            if plan.mode == "swap":
                M, beta = swap_mapper(src, edit)
            else:
                M, beta = refine_mapper(src, edit)
        except P2PError as e:
            raise P2PError(f"edit prompt {i} ({edit.text!r}): {e}", fix=e.fix) from None
        L = edit.length
        w = torch.ones(L)
        for word, val in plan.weights.items():
            pos = edit.positions_of(word)
            if pos:
                found_weights[word] = True
                w[pos] = w[pos] * val
        window_id = torch.zeros(L, dtype=torch.long)
        for word, win in plan.cross_windows.items():
            if word == "default":
                continue
            pos = edit.positions_of(word)
            if pos:
                found_windows[word] = True
                if win not in windows:
                    windows.append(win)
                window_id[pos] = windows.index(win)
        c_src, c_edit = changed_tokens(src, edit, M)
        if own_changed:
            beta = torch.where(c_edit, torch.zeros_like(beta), beta)
        ch_src.append(c_src)
        ch_edit.append(c_edit | (w != 1))  # a reweighted word's region changes too
        Ms.append(M.float())
        betas.append(beta.float())
        ws.append(w)
        window_ids.append(window_id)
    missing = [w for w, ok in found_weights.items() if not ok] + [w for w, ok in found_windows.items() if not ok]
    if missing:
        raise P2PError(f"word(s) {missing} are not in any edit prompt. {words_available(ps.edits)}")
    if ps.n_edits == 0:
        raise P2PError("the prompt set has no edit prompt.")
    return CompiledEdit(
        M=torch.stack(Ms),
        beta=torch.stack(betas),
        w=torch.stack(ws),
        windows=tuple(windows),
        window_id=torch.stack(window_ids),
        self_window=plan.self_window,
        changed_src=torch.stack(ch_src),
        changed_edit=torch.stack(ch_edit),
    )
