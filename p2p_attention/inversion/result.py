"""The P2P_INVERSION value: what an inversion hands to sampling, with its cost."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .settings import SAMPLER, SCHEDULER


@dataclass
class Inversion:
    """The P2P_INVERSION value: what a method needs at sampling time, plus its cost.

    trajectory[k] is the latent at sigmas[k] in the model's sampling space (process_latent_in
    applied): trajectory[0] the inverted noise, trajectory[-1] the source latent.
    `latent` is trajectory[0] in ComfyUI's LATENT convention (what a sampler with add_noise off
    takes). All tensors live on the CPU.
    """

    method: str
    sigmas: torch.Tensor
    steps: int
    guidance: float
    latent: torch.Tensor
    trajectory: list
    sampler: str = SAMPLER
    scheduler: str = SCHEDULER
    null_embeddings: list | None = None  # per step [1, L, D] fp32: the unconditional text context
    negative_conditioning: list | None = None  # null_text: the negative the embeddings were optimised with
    source_conditioning: list | None = None  # negative_prompt: the source prompt, used as unconditional
    positive_context: torch.Tensor | None = None  # [1, L, D] the text context of the positive it was made under
    prompts_uid: str | None = None  # the PromptSet it was given (its source compared already)
    unet_evals: int = 0  # single-image UNet forward passes (a CFG step on one image counts 2)
    unet_backwards: int = 0  # backward passes through the UNet (null_text)
    inner_iterations: int = 0  # the setting
    inner_iterations_used: list = field(default_factory=list)  # per step (null_text)
    final_losses: list = field(default_factory=list)  # per step (null_text)
    nan_steps: list = field(default_factory=list)  # steps where the optimisation hit a NaN and fell back
    seconds: float = 0.0
    model_id: int = 0
    details: str = ""  # the method's own figures for summary() (null-text: iterations, backward passes)

    @property
    def n_steps(self) -> int:
        """Sampling steps the schedule really has (ddim_uniform may give one more than asked)."""
        return len(self.sigmas) - 1

    @property
    def source_latent(self) -> torch.Tensor:
        return self.trajectory[-1]

    def summary(self) -> str:
        return (
            f"{self.method} inversion: {self.n_steps} steps ({self.sampler}/{self.scheduler}), "
            f"guidance {self.guidance:g}, {self.unet_evals} UNet evaluations{self.details}"
        )

    def __repr__(self) -> str:  # never dump tensors into logs
        return f"Inversion({self.summary()})"
