"""Attention store: per-token cross-attention maps of the source and every edit.

Maps are materialised only at the layers of ONE resolution (a downsample factor of the
latent, default 4: 16x16 at 512 px for SD1.x, 32x32 at 1024 px for SDXL), averaged over
heads and layers, summed over steps. Memory: (1 + N) * h * w * L floats, e.g. 3 items at
16x16 with 77 tokens = 236 KB; transient per layer: (1 + N) * heads * h*w * L floats.
The edit items' maps are the ones the edit actually used, AFTER injection (the official store
keeps views that its edit overwrites in place, so its local blend and its maps read them):
inside the cross window an edit item's map is a1 * (A_src @ M) + a2 * A_edit.
"""

from __future__ import annotations

import torch

from .errors import P2PError
from .maps import edited_maps


class AttentionStore:
    """Accumulates cross-attention maps of the cond items during one sampling run. Each model adapter
    feeds it from its own layers (unet_runtime.MapRecorder, dit_runtime.DiTRuntime._record)."""

    def __init__(self, prompts):
        self.prompts = prompts
        self.token_length = prompts.length
        self.reset()

    def reset(self, run=None):
        """Empty, for a sampling run of `run` (the ComfyUI prompt executing it; None outside ComfyUI)."""
        self.sum: torch.Tensor | None = None  # [items, h, w, L]
        self.layer_calls = 0
        self.last_masks: torch.Tensor | None = None  # local blend's masks at the last step
        self.run = run
        self.outputs: list[torch.Tensor] = []  # latents known to come from this run's sampling (CPU copies)

    def _vouched(self, samples: torch.Tensor) -> bool:
        # In the reader's dtype: ComfyUI may hand the sampler's output on in another (intermediate) dtype.
        got = samples.detach().cpu()
        return any(o.shape == got.shape and torch.equal(o.to(got.dtype), got) for o in self.outputs)

    def vouch(self, samples: torch.Tensor) -> None:
        """`samples` came from the run that filled the store (a later prompt may read them from the cache)."""
        if not isinstance(samples, torch.Tensor) or samples.is_nested:
            return
        if not self._vouched(samples):
            self.outputs = [*self.outputs[-3:], samples.detach().to("cpu", copy=True)]

    def check_read(self, samples: torch.Tensor, run) -> None:
        """Refuse maps that `samples` were not sampled with: a store is filled by the sampling of one prompt,
        and a later prompt whose sampler did not use the patched MODEL would read the earlier prompt's maps.
        `run` is the reading prompt (None outside ComfyUI: nothing to compare)."""
        self.maps()  # nothing recorded at all
        if run is None or self.run is None or run == self.run:
            if run is not None:
                self.vouch(samples)  # same prompt: these samples may be read again from the cache
            return
        if not self._vouched(samples):
            raise P2PError("the attention store holds the maps of an earlier run: 'samples' were not sampled "
                           "with the patched MODEL in this run.", fix="maps_after_sampling")

    def add(self, maps: torch.Tensor, h: int, w: int, coeffs=None) -> None:
        """Accumulate one layer's head-averaged maps [source + edits, h*w, Lk] as the edit used them."""
        if coeffs is not None:
            # Head mean first: the edit's coefficients are per token, the same for every head.
            maps = torch.cat([maps[:1], edited_maps(maps[:1], maps[1:], coeffs)])
        reps = maps.shape[-1] // self.token_length  # context repeated to the cond/uncond LCM
        maps = maps.reshape(maps.shape[0], h, w, reps, self.token_length).sum(3)
        if self.sum is None or self.sum.shape != maps.shape:
            self.sum = torch.zeros_like(maps)
        self.sum += maps
        self.layer_calls += 1

    def maps(self) -> torch.Tensor:
        """Averaged maps [items, h, w, L] (float32, on the device they were computed on)."""
        if self.sum is None:
            raise P2PError("no attention was recorded: the maps are read before the patched MODEL was sampled.",
                           fix="maps_after_sampling")
        return self.sum / self.layer_calls

    def word_map(self, item: int, positions: list[int]) -> torch.Tensor:
        """Sum of the maps of `positions` (a word's tokens) for one batch item: [h, w]."""
        return self.maps()[item][..., positions].sum(-1)
