"""How engine errors reach the user: the node's display name first, then what is wrong, then the
change of wiring that fixes it (the engine names that change by a key, never by node names)."""

from contextlib import contextmanager
from functools import partial

from ..p2p_attention.errors import P2PError

FIXES = {
    "prompt_pair": "Connect 'prompts' to a P2P Prompt Pair node.",
    "same_prompt_pair": "Connect the edit and 'prompts' to the same P2P Prompt Pair node.",
    "one_base_edit": "Stack P2P Reweight or P2P Local Blend on it instead.",
    "refine_for_word_count": "Use P2P Refine to add or remove words.",
    "single_latent": "Give P2P Latent Batch one latent (EmptyLatentImage batch_size 1, or one VAEEncode'd image).",
    "latent_batch": "Feed the sampler the source latent through P2P Latent Batch.",
    "sampler_positive": "Connect the P2P Prompt Pair's CONDITIONING to the sampler's positive input.",
    "sampler_nodes": "Sample the patched MODEL with KSampler, KSamplerAdvanced, SamplerCustom or SamplerCustomAdvanced.",
    "maps_after_sampling": "Connect to 'samples' the LATENT of the sampler that used this P2P Apply's MODEL.",
    "inversion_sampling": "Use KSamplerAdvanced (add_noise disabled, start_at_step 0, end_at_step >= steps) or "
    "SamplerCustom (add_noise off, BasicScheduler, denoise 1.0) with those settings.",
    "inverted_latent": "Feed P2P Invert's LATENT output, through P2P Latent Batch, to the sampler.",
    "inversion_input": "Connect 'inversion' to P2P Invert's inversion output.",
    "original_model": "Connect the original MODEL, not one already patched with an inversion.",
    "one_negative": "Connect one CLIPTextEncode of an empty prompt as negative.",
    "encode_text": "Connect a CLIPTextEncode output.",
    "encode_image": "Connect VAEEncode's output.",
    "one_image": "VAEEncode a single image, or pick one with 'Latent From Batch'.",
    "flux_inversion": "Choose method direct (exact reconstruction), fixed_point or ddim, and give the positive its "
    "distilled guidance with FluxGuidance.",
}


class NodeError(P2PError):
    """An engine error already worded for the user (explaining it again leaves it as it is)."""


def explain(display_name: str, error: P2PError) -> P2PError:
    if isinstance(error, NodeError):
        return error
    hint = FIXES.get(error.fix)
    return NodeError(f"{display_name}: {error}" + (f" {hint}" if hint else ""), fix=error.fix)


def explainer(node_cls):
    """What the engine calls on errors raised while the node's patched MODEL samples."""
    return partial(explain, node_cls.DISPLAY_NAME)


@contextmanager
def reported_by(node_cls):
    """Around a node's execute: its engine errors reach the user as this node's."""
    try:
        yield
    except P2PError as e:
        raise explain(node_cls.DISPLAY_NAME, e) from None
