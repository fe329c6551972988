"""How engine errors and warnings reach the user. Errors: the node's display name first, then what is
wrong, then the change of wiring that fixes it (the engine names that change by a key, never by node
names). Warnings: in the console (the engine logs them) and on the node in ComfyUI's UI: the text of
the node that was executing (ComfyUI's progress text, which the frontend draws on the node), and the
node's `ui` output {"text": [...]} (history and the websocket's `executed` message)."""

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

from ..p2p_attention.errors import P2PError, add_warning_listener

FIXES = {
    "prompt_pair": "Connect 'prompts' to a P2P Prompt Pair node.",
    "same_prompt_pair": "Connect the edit and 'prompts' to the same P2P Prompt Pair node.",
    "one_base_edit": "Stack P2P Reweight or P2P Local Blend on it instead.",
    "refine_for_word_count": "Use P2P Refine to add or remove words.",
    "single_latent": "Give P2P Latent Batch one latent (EmptyLatentImage batch_size 1, or one VAEEncode'd image).",
    "latent_batch": "Feed the sampler the source latent through P2P Latent Batch.",
    "no_reference_images": "Sample without reference images, or edit a photo with P2P Invert.",
    "prompt_tokens_only": "Sample with the P2P Prompt Pair's CONDITIONING as the positive, without StyleModelApply "
    "(Redux) or ConditioningConcat / ConditioningCombine on it; to edit a photo, invert it with P2P Invert.",
    "sampler_positive": "Connect the P2P Prompt Pair's CONDITIONING to the sampler's positive input.",
    "lumina2_positive": "Connect the P2P Prompt Pair's CONDITIONING to the sampler's positive input in place of "
    "CLIP Text Encode (Lumina 2) (or the CLIPTextEncode of ComfyUI's Lumina 2 example), with the Prompt Pair's "
    "source written as that node encodes it: '<system prompt> <Prompt Start> <prompt>'; the edits, one per line, "
    "take the source's system prompt.",
    "sampler_nodes": "Sample the patched MODEL with KSampler, KSamplerAdvanced, SamplerCustom or SamplerCustomAdvanced.",
    "maps_after_sampling": "Connect to 'samples' the LATENT of the sampler that used this P2P Apply's MODEL.",
    "inversion_sampling": "Use KSamplerAdvanced (add_noise disabled, start_at_step 0, end_at_step >= steps) or "
    "SamplerCustom (add_noise off, BasicScheduler, denoise 1.0) with those settings.",
    "inverted_latent": "Feed P2P Invert's LATENT output, through P2P Latent Batch, to the sampler.",
    "inversion_input": "Connect 'inversion' to P2P Invert's inversion output.",
    "inversion_source": "Connect P2P Prompt Pair's 'prompts' output to 'prompts' (or a CLIPTextEncode of the source "
    "prompt to 'positive').",
    "original_model": "Connect the original MODEL, not one already patched with an inversion.",
    "one_negative": "Connect one CLIPTextEncode of an empty prompt as negative.",
    "encode_text": "Connect a CLIPTextEncode output.",
    "encode_image": "Connect VAEEncode's output.",
    "one_image": "VAEEncode a single image, or pick one with 'Latent From Batch'.",
    "unpatched_model": "Connect the original MODEL, not a P2P Apply output; to combine controls, stack them "
    "(P2P Reweight, P2P Local Blend) on one edit before a single P2P Apply.",
    "text_encoder": "Encode the prompts (P2P Prompt Pair and the negative) with the CLIP loaded with this MODEL: the "
    "same checkpoint, or the text encoder loader that matches it (DualCLIPLoader type flux for Flux.1, "
    "TripleCLIPLoader for SD3, CLIPLoader type chroma for Chroma).",
    "latent_for_model": "VAEEncode the image with this MODEL's VAE, or start from an empty latent made for it "
    "(EmptySD3LatentImage for Flux.1, SD3 and Chroma, EmptyChromaRadianceLatentImage for Chroma Radiance, "
    "EmptyLatentImage for SD1.x, SD2.x and SDXL).",
    "cache_speedup": "Take the EasyCache / LazyCache node out of the MODEL's path (before or after P2P Apply); "
    "sample without it.",
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


def executing_node() -> str | None:
    """The node ComfyUI is executing, as its UI shows it: 'KSampler (node 7)' (its title when the graph
    gave one, else its class's display name; node ids of expanded subgraphs as displayed). None outside
    ComfyUI's executor."""
    try:
        from comfy_execution.progress import get_progress_state
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    node_id = getattr(context, "node_id", None)
    if node_id is None:
        return None
    name, shown = None, node_id
    try:
        state = get_progress_state()
        if getattr(state, "prompt_id", None) == context.prompt_id:
            graph = state.dynprompt
            shown = graph.get_display_node_id(node_id)
            node = graph.get_node(node_id)
            class_type = node.get("class_type")
            import nodes

            name = ((node.get("_meta") or {}).get("title") or nodes.NODE_DISPLAY_NAME_MAPPINGS.get(class_type)
                    or class_type)
    except Exception as e:  # the name is a courtesy: the node id is still said
        logging.debug("Prompt-to-Prompt: executing node not named: %s", e)
    return f"{name} (node {shown})" if name else f"node {shown}"


def explain_sampling(display_name: str, error: P2PError) -> P2PError:
    """An error raised while another node (the sampler) runs this node's patched MODEL: the node to fix
    first, as always, and then which node was running, since ComfyUI's error dialog is titled by that one."""
    if isinstance(error, NodeError):
        return error
    out = explain(display_name, error)
    running = executing_node()
    if running is None:
        return out
    return NodeError(f"{out} (Raised while {running} sampled this {display_name}'s MODEL.)", fix=error.fix)


def explainer(node_cls):
    """What the engine calls on errors raised while the node's patched MODEL samples."""
    return partial(explain_sampling, node_cls.DISPLAY_NAME)


# The warnings of the pack's node now executing (its `reported_by` block), shown when it finishes.
_node_warnings: ContextVar = ContextVar("p2p_node_warnings", default=None)


def show_on_node(text: str, node_id=None) -> None:
    """Draw `text` on a node in ComfyUI's frontend (progress text; the executing node by default)."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:  # outside ComfyUI
        return
    if node_id is None:
        context = get_executing_context()
        node_id = getattr(context, "node_id", None)
    server = getattr(PromptServer, "instance", None)
    if node_id is None or server is None:
        return
    try:
        server.send_progress_text(text, node_id)
    except Exception as e:  # the UI message is a courtesy: the console has the warning
        logging.debug("Prompt-to-Prompt: progress text not sent: %s", e)


def _on_warning(text: str) -> None:
    collected = _node_warnings.get()
    if collected is not None:
        collected.append(text)  # shown when the node finishes (all its warnings at once)
    else:
        show_on_node("Prompt-to-Prompt: " + text)  # e.g. the sampler running a patched MODEL


add_warning_listener(_on_warning)


def ui_text(warnings: list[str]):
    """A node's `ui` output for its warnings (None without any)."""
    return {"text": ["Prompt-to-Prompt: " + w for w in warnings]} if warnings else None


@contextmanager
def reported_by(node_cls):
    """Around a node's execute: its engine errors reach the user as this node's, and its engine warnings
    are collected into the list this yields (for `ui_text`) and drawn on the node."""
    warnings: list[str] = []
    token = _node_warnings.set(warnings)
    try:
        yield warnings
    except P2PError as e:
        raise explain(node_cls.DISPLAY_NAME, e) from None
    finally:
        _node_warnings.reset(token)
        if warnings:
            show_on_node("\n".join("Prompt-to-Prompt: " + w for w in warnings))
