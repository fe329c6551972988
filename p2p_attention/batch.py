"""Where the source and the edit items sit in a batch: the sampler's latent batch and the
attention batch (cond and uncond chunks over the whole latent batch, in cond_or_uncond order)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import P2PError


def check_items(have: int, n_edits: int) -> None:
    """The latent batch must hold the source and one item per edit."""
    if have != 1 + n_edits:
        raise P2PError(
            f"the latent batch has {have} item(s) but the prompts need {1 + n_edits} "
            f"(the source and {n_edits} edit(s)).", fix="latent_batch",
        )


@dataclass
class Layout:
    """Where source and edit items sit in an attention batch: one (src, edits) per cond chunk."""

    groups: list[tuple[int, list[int]]]

    @property
    def edit_index(self) -> list[int]:
        return [e for _, es in self.groups for e in es]


def batch_layout(total: int, cond_or_uncond: list[int], n_edits: int) -> Layout:
    chunks = len(cond_or_uncond)
    per = total // chunks
    check_items(per if per * chunks == total else total, n_edits)
    groups = [(c * per, list(range(c * per + 1, (c + 1) * per))) for c, kind in enumerate(cond_or_uncond) if kind == 0]
    return Layout(groups=groups)


