"""What the runtimes of both model adapters share (unet_runtime.P2PRuntime, dit_runtime.DiTRuntime): the
plan and its tensors, the path (fast or reference), the attention store and the step clock. The batch
layout (batch.py), the edit maths (maps.py, edits.py) and local blend (blend.py) are shared modules."""

from __future__ import annotations

from dataclasses import dataclass, field

from .edits import CompiledEdit, EditPlan
from .steps import StepClock
from .store import AttentionStore


@dataclass
class EditRuntime:
    """State shared by every attention patch of one P2P Apply."""

    plan: EditPlan
    compiled: CompiledEdit
    reference: bool = False  # materialise maps (tests and benchmarks): attention_path "reference"
    store: AttentionStore | None = None  # the maps the edit used (local blend, P2P Attention Maps)
    clock: StepClock = field(default_factory=StepClock)
