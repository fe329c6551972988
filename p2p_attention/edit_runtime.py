"""What the runtimes of both model adapters share (unet_runtime.P2PRuntime, dit_runtime.DiTRuntime): the
plan and its tensors, the path (fast or reference), the attention store and the step clock. The batch
layout (batch.py), the edit maths (maps.py, edits.py) and local blend (blend.py) are shared modules."""

from __future__ import annotations

from dataclasses import dataclass, field

from .edits import CompiledEdit, EditPlan
from .errors import P2PError, warn
from .steps import StepClock, current_step
from .store import AttentionStore


@dataclass
class EditRuntime:
    """State shared by every attention patch of one P2P Apply."""

    plan: EditPlan
    compiled: CompiledEdit
    reference: bool = False  # materialise maps (tests and benchmarks): attention_path "reference"
    store: AttentionStore | None = None  # the maps the edit used (local blend, P2P Attention Maps)
    clock: StepClock = field(default_factory=StepClock)
    # Every attention block a model call runs (the install sets it), the ones that reached the runtime in
    # the model call under way, and whether this sampling run was warned that some did not.
    blocks: frozenset = frozenset()
    ran: set = field(default_factory=set)
    skips_warned: bool = False

    def check_blocks_ran(self, transformer_options: dict, exempt=frozenset()) -> None:
        """After a model call (an APPLY_MODEL wrapper): warn, once per sampling run, when some of the model's
        attention blocks did not reach the edit (a cache speed-up that skips blocks, such as TeaCache or
        First Block Cache, or a patch that replaced the edit's), so their attention was not edited.
        exempt: blocks another pack's block patch owns in this call (it runs them, or skips them on purpose,
        as Skip Layer Guidance's extra pass does)."""
        missing = self.blocks - self.ran - exempt
        self.ran = set()
        if not missing or self.skips_warned:
            return
        self.skips_warned = True
        try:
            step, n_steps = current_step(transformer_options)
            when = f"at step {step + 1} of {n_steps}, "
        except (KeyError, P2PError):
            when = ""
        warn("%sonly %d of this model's %d attention blocks ran through Prompt-to-Prompt, so the other %d were "
             "not edited: something on the MODEL skips blocks or steps (a cache speed-up such as TeaCache or "
             "First Block Cache) or replaced the edit's attention patch. Remove it for Prompt-to-Prompt, or the "
             "edit will be weak or lost.", when, len(self.blocks) - len(missing), len(self.blocks), len(missing))
