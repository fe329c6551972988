"""Bad and edge-case inputs, one row each, on the demo models through ComfyUI's executor (issue 27).

Every row ends in one of three outcomes, never in a silently wrong image:
* Error: ComfyUI's execution error names the pack's node and says what to change;
* Warn: the graph runs and the warning reaches the UI (the node's `ui` text, or the progress text
  ComfyUI's frontend draws on the executing node), not only the console;
* Deliberate: the graph runs and the documented behaviour holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from family_graphs import saved_latent
from harness import Graph, InprocessSession, inprocess_dirs, run_inprocess

SRC = "a big red circle on the left and a small blue square on the right"
EDIT = SRC.replace("red", "green")


@dataclass
class Error:
    node: str  # the display name the message starts with
    parts: tuple[str, ...]  # what is wrong, and the fix
    combo: str | None = None  # a COMBO input: ComfyUI 0.33+ refuses the value itself, before the pack sees it


@dataclass
class Warn:
    node: str  # "ui:<node key>" (the node's ui text) or "progress:<node key>" (drawn on that node)
    part: str


@dataclass
class Deliberate:
    what: str
    check: object = None  # callable(outputs) -> None, or None: the graph runs


@dataclass
class Case:
    edits: str = EDIT
    source: str = SRC
    control: str = "P2PWordSwap"
    control_inputs: dict = field(default_factory=dict)
    apply_inputs: dict = field(default_factory=dict)
    sampler: dict = field(default_factory=dict)
    flux: bool = False  # the demo Flux model, else the SD1 demo model
    clip_from_other: bool = False  # encode with the other demo model's CLIP
    latent_batch: bool = True
    latent_batch_size: int = 1
    chained: bool = False
    inversion: dict | None = None  # P2P Invert inputs (its image: an empty one, encoded)
    foreign_latent: bool = False  # the latent encoded by the other demo model's VAE
    invert_text: str | None = None  # P2P Invert's positive prompt (default: the source)
    invert_source: str = "positive"  # P2P Invert's source prompt: "positive", "prompts" (the pair's), "both", "none"


def build(c: Case) -> tuple[Graph, dict]:
    g = Graph()
    m = g.node("P2PDemoFluxModel" if c.flux else "P2PDemoModel")
    other = g.node("P2PDemoModel" if c.flux else "P2PDemoFluxModel")
    clip = other[1] if c.clip_from_other else m[1]
    pair = g.node("P2PPromptPair", clip=clip, source=c.source, edits=c.edits)
    neg = g.node("CLIPTextEncode", clip=clip, text="")
    pos = g.node("FluxGuidance", conditioning=pair[0], guidance=3.5) if c.flux else pair
    if c.inversion is not None or c.foreign_latent:
        img = g.node("EmptyImage", width=32, height=32, batch_size=1, color=0x8040C0)
        lat = g.node("VAEEncode", pixels=img, vae=other[2] if c.foreign_latent else m[2])
    elif c.flux:
        lat = g.node("EmptySD3LatentImage", width=64, height=64, batch_size=c.latent_batch_size)
    else:
        lat = g.node("EmptyLatentImage", width=128, height=128, batch_size=c.latent_batch_size)
    inv = None
    if c.inversion is not None:
        source_in = {}
        if c.invert_source in ("positive", "both"):
            source_in["positive"] = g.node("CLIPTextEncode", clip=clip, text=c.invert_text or c.source)
        if c.invert_source in ("prompts", "both"):
            source_in["prompts"] = pair[1]
        inv = g.node("P2PInvert", model=m[0], negative=neg, latent=lat, **source_in,
                     **{"method": "ddim", "steps": 5, "guidance": 1.0 if c.flux else 5.0, "inner_iterations": 2,
                        **c.inversion})
        lat = inv
    if c.latent_batch:
        lat = g.node("P2PLatentBatch", latent=lat, prompts=pair[1])
    ctl = {"P2PWordSwap": {"cross_replace": "0.8", "self_replace": "0.4"},
           "P2PRefine": {"cross_replace": "0.8", "self_replace": "0.4"},
           "P2PReweight": {"weights": "green: 2", "cross_replace": "0.8", "self_replace": "0.4"},
           "P2PLocalBlend": {"words": "red, green", "subtract": "", "threshold": 0.3, "subtract_threshold": 0.3,
                             "start_blend": 0.2, "dilation": 1}}[c.control]
    edit = g.node(c.control, prompts=pair[1], **{**ctl, **c.control_inputs})
    apply_in = {"self_attn_min_downsample": 0, "map_downsample": 4, "self_blocks": "auto", "attention_path": "fast",
                **c.apply_inputs}
    if inv is not None:
        apply_in["inversion"] = inv[1]
    apply = g.node("P2PApply", model=m[0], edit=edit, **apply_in)
    model = g.node("P2PApply", model=apply[0], edit=edit, **apply_in) if c.chained else apply
    steps = c.inversion.get("steps", 5) if c.inversion is not None else 5
    sampler = {"seed": 1, "steps": steps, "cfg": 1.0 if c.flux else 5.0, "sampler_name": "euler",
               "scheduler": ("simple" if c.flux else "ddim_uniform") if inv is not None else
               ("simple" if c.flux else "normal"), "denoise": 1.0, **c.sampler}
    if inv is not None:
        sampler["sampler_name"] = "euler" if c.flux else "ddim"
        out = g.node("KSamplerAdvanced", model=model[0], positive=pos, negative=neg, latent_image=lat,
                     add_noise="disable", noise_seed=1, steps=sampler["steps"], cfg=sampler["cfg"],
                     sampler_name=sampler["sampler_name"], scheduler=sampler["scheduler"], start_at_step=0,
                     end_at_step=10000, return_with_leftover_noise="disable")
    else:
        out = g.node("KSampler", model=model[0], positive=pos, negative=neg, latent_image=lat, **sampler)
    maps = g.node("P2PAttentionMaps", attention_store=apply[1], samples=out, prompt_index=1, words="circle",
                  threshold=0.0, vae_downscale=2)
    g.node("PreviewImage", _id="maps", images=maps[0])
    g.node("PreviewImage", _id="save", images=g.node("VAEDecode", samples=out, vae=m[2]))
    return g, {"pair": pair.id, "edit": edit.id, "apply": apply.id, "sampler": out.id, "maps": maps.id,
               "invert": inv.id if inv is not None else None}


def _self_blocks_empty_is_auto(outputs):
    from p2p_attention.dit_blocks import select_blocks
    from p2p_attention.families import FLUX
    from p2p_attention.widget_text import parse_block_ranges

    def parse_self_blocks(text, blocks, family):
        return select_blocks(parse_block_ranges(text), blocks, family)

    blocks = [("double", i) for i in range(2)] + [("single", i) for i in range(38)]
    assert parse_self_blocks("", blocks, FLUX) == parse_self_blocks("auto", blocks, FLUX)
    assert parse_self_blocks("  ", blocks, FLUX) == {("single", i) for i in range(20, 38)}


def _default_window_is_official(outputs):
    from p2p_attention.widget_text import parse_word_windows

    assert parse_word_windows("green: 0.4", "cross_replace") == {"green": (0.0, 0.4), "default": (0.0, 1.0)}


APPLY_FIX = "Connect the original MODEL, not a P2P Apply output"
TEXT_FIX = "Encode the prompts (P2P Prompt Pair and the negative) with the CLIP loaded with this MODEL"

ROWS = {
    # --- prompts ---
    "empty_source": (Case(source="   "), Error("P2P Prompt Pair", ("the source prompt is empty",))),
    "no_edit": (Case(edits=" \n "), Error("P2P Prompt Pair", ("no edit prompt",))),
    "word_count": (Case(edits=SRC + " big"), Error("P2P Word Swap", ("the source has", "Use P2P Refine"))),
    "unknown_edit_word": (Case(source=SRC.replace("red", "crimson"), edits=SRC.replace("red", "scarlet")),
                          Error("P2P Prompt Pair", ("outside this model's vocabulary", "Change words the model knows"))),
    "unknown_swapped_word": (Case(edits=SRC.replace("circle", "dog")),
                             Error("P2P Prompt Pair", ("edit prompt 1", "'dog' is outside this model's vocabulary",
                                                       "would vanish", "Change words the model knows: ", "circle"))),
    "unknown_inserted_word": (Case(edits=SRC.replace("big red", "big fluffy red"), control="P2PRefine"),
                              Error("P2P Prompt Pair", ("'fluffy' is outside this model's vocabulary",
                                                        "Change words the model knows"))),
    "unknown_words_among_edits": (Case(edits=f"{EDIT}\n" + SRC.replace("red circle", "crimson dog")),
                                  Error("P2P Prompt Pair", ("edit prompt 2", "'crimson', 'dog' are outside",))),
    "flux_unknown_swapped_word": (Case(flux=True, edits=SRC.replace("circle", "dog")),
                                  Error("P2P Prompt Pair", ("'dog' is outside this model's vocabulary",))),
    # --- windows ---
    "window_syntax": (Case(control_inputs={"cross_replace": "abc"}), Error("P2P Word Swap", ("not a step window",))),
    "window_range": (Case(control_inputs={"self_replace": "0.9-0.2"}),
                     Error("P2P Word Swap", ("0 <= start <= end <= 1",))),
    "cross_replace_empty": (Case(control_inputs={"cross_replace": ""}),
                            Error("P2P Word Swap", ("cross_replace is empty", "0.8 (the default)"))),
    "self_replace_empty": (Case(control_inputs={"self_replace": " "}), Error("P2P Word Swap", ("not a step window",))),
    "cross_replace_words_only": (Case(control_inputs={"cross_replace": "green: 0.4"}),
                                 Deliberate("words not listed follow default 0-1, as official",
                                            _default_window_is_official)),
    # --- weights ---
    "weights_syntax": (Case(edits=SRC, control="P2PReweight", control_inputs={"weights": "red 2"}),
                       Error("P2P Reweight", ("needs the form 'word: value'",))),
    "weights_huge": (Case(edits=SRC, control="P2PReweight", control_inputs={"weights": "small: 1000000000"}),
                     Error("P2P Reweight", ("is outside -100 to 100", "turn the image into noise"))),
    "weights_exponent": (Case(edits=SRC, control="P2PReweight", control_inputs={"weights": "red: 1e9"}),
                         Error("P2P Reweight", ("(1e+09) is outside -100 to 100",))),
    "weights_duplicate": (Case(edits=SRC, control="P2PReweight", control_inputs={"weights": "red: 2, red: 3"}),
                          Error("P2P Reweight", ("'red' is given twice",))),
    "weights_empty": (Case(edits=SRC, control="P2PReweight", control_inputs={"weights": " \n"}),
                      Error("P2P Reweight", ("weights is empty",))),
    "weights_absent_word": (Case(edits=SRC, control="P2PReweight", control_inputs={"weights": "purple: 2"}),
                            Error("P2P Reweight", ("['purple'] are not in any edit prompt",))),
    # --- local blend ---
    "blend_absent_word": (Case(control="P2PLocalBlend", control_inputs={"words": "purple"}),
                          Error("P2P Local Blend", ("'purple' is in no prompt",))),
    "blend_threshold_1": (Case(control="P2PLocalBlend", control_inputs={"threshold": 1.0}),
                          Error("P2P Local Blend", ("threshold must be below 1", "Use e.g. 0.3"))),
    "blend_threshold_0": (Case(control="P2PLocalBlend", control_inputs={"threshold": 0.0}),
                          Error("P2P Local Blend", ("threshold must be above 0", "no blend at all", "Use e.g. 0.3"))),
    "blend_subtract_threshold_0": (Case(control="P2PLocalBlend",
                                        control_inputs={"subtract": "square", "subtract_threshold": 0.0}),
                                   Error("P2P Local Blend", ("subtract_threshold must be above 0",
                                                             "the source everywhere", "Use e.g. 0.3"))),
    "blend_subtract_threshold_1": (Case(control="P2PLocalBlend",
                                        control_inputs={"subtract": "square", "subtract_threshold": 1.0}),
                                   Error("P2P Local Blend", ("subtract_threshold must be below 1",))),
    "blend_subtract_threshold_0_unused": (Case(control="P2PLocalBlend", control_inputs={"subtract_threshold": 0.0}),
                                          Deliberate("without subtract words, subtract_threshold is unused")),
    "blend_start_0": (Case(control="P2PLocalBlend", control_inputs={"start_blend": 0.0}),
                      Deliberate("start_blend 0 blends from the first step (the maps of step 0)")),
    "blend_start_1": (Case(control="P2PLocalBlend", control_inputs={"start_blend": 1.0}),
                      Error("P2P Local Blend", ("start_blend must be below 1", "never run"))),
    # --- latents ---
    "latent_batch_2": (Case(latent_batch_size=2), Error("P2P Latent Batch", ("has batch 2", "EmptyLatentImage batch"))),
    "latent_not_batched": (Case(latent_batch=False),
                           Error("P2P Apply", ("the latent batch has 1 item(s)", "through P2P Latent Batch"))),
    "latent_of_other_vae": (Case(flux=True, foreign_latent=True),
                            Error("P2P Apply", ("the latent has 4 channels", "16-channel", "VAEEncode the image"))),
    # --- P2P Apply options and the model ---
    "attention_path_unknown": (Case(apply_inputs={"attention_path": "unknown"}),
                               Error("P2P Apply", ("attention_path: 'unknown' is not one of 'fast', 'reference'",),
                                     combo="attention_path")),
    "self_blocks_on_unet": (Case(apply_inputs={"self_blocks": "foo"}),
                            Error("P2P Apply", ("self_blocks 'foo' applies to MM-DiT models only",
                                                "Set self_blocks to 'auto'"))),
    "self_min_downsample_on_dit": (Case(flux=True, apply_inputs={"self_attn_min_downsample": 2}),
                                   Error("P2P Apply", ("applies to UNet models only", "Set it to 0 (auto)"))),
    "map_downsample_on_dit": (Case(flux=True, apply_inputs={"map_downsample": 2}),
                              Error("P2P Apply", ("map_downsample 2 applies to UNet models only",))),
    "mmdit_structure_on_unet": (Case(apply_inputs={"mmdit_structure": "image_qk"}),
                                Error("P2P Apply", ("mmdit_structure 'image_qk' applies to MM-DiT models only",
                                                    "Set mmdit_structure to values_outside_edit"))),
    "mmdit_structure_unknown": (Case(flux=True, apply_inputs={"mmdit_structure": "foo"}),
                                Error("P2P Apply", ("mmdit_structure 'foo' is not one of",), combo="mmdit_structure")),
    "self_blocks_none_selected": (Case(flux=True, apply_inputs={"self_blocks": "single 5-9"}),
                                  Error("P2P Apply", ("this model has no single blocks 5-9",))),
    "self_blocks_empty_on_dit": (Case(flux=True, apply_inputs={"self_blocks": ""}),
                                 Deliberate("'' means 'auto'", _self_blocks_empty_is_auto)),
    "chained_apply": (Case(chained=True), Error("P2P Apply", ("already carries a Prompt-to-Prompt edit", APPLY_FIX))),
    "flux_clip_on_sd1": (Case(clip_from_other=True, edits=EDIT.replace("green", "purple")),
                         Error("P2P Apply", ("the positive conditioning is", "-wide text context", TEXT_FIX))),
    "sd1_clip_on_flux": (Case(flux=True, clip_from_other=True),
                         Error("P2P Apply", ("the positive conditioning is", "-wide text context", TEXT_FIX))),
    # --- inversion ---
    "flux_null_text": (Case(flux=True, inversion={"method": "null_text"}),
                       Error("P2P Invert", ("Choose method direct",))),
    "inversion_steps_mismatch": (Case(inversion={"steps": 3}, sampler={"steps": 4}),
                                 Error("P2P Apply", ("steps",))),
    # --- warnings the user sees, the result still produced ---
    "edit_equals_source": (Case(edits=SRC), Warn("ui:apply", "equal the source and no word is reweighted")),
    "edits_identical_unknown_words": (
        Case(source=SRC + " crimson scarlet", edits=f"{EDIT} crimson\n{EDIT} scarlet", control="P2PRefine"),
        Warn("ui:pair", "edit prompts [1, 2] encode exactly alike: 'crimson', 'scarlet' are outside")),
    "unknown_word": (Case(source=SRC + " photo", edits=EDIT + " photo"), Warn("ui:pair", "'photo' in")),
    "one_step": (Case(sampler={"steps": 1}), Warn("progress:sampler", "all 1 sampling step(s) are inside")),
    "window_without_steps": (Case(flux=True, control_inputs={"self_replace": "0.5-0.52"}),
                             Warn("progress:sampler", "self_replace 0.5-0.52 select(s) no step of this 5-step")),
    "one_step_inversion": (Case(inversion={"steps": 1}), Warn("progress:sampler", "all 1 sampling step(s)")),
    "inversion_of_another_prompt": (Case(inversion={}, invert_text=SRC.replace("big", "small")),
                                    Warn("ui:apply", "the inversion was made under a positive prompt other than")),
    "flux_inversion_of_another_prompt": (Case(flux=True, inversion={"method": "direct"},
                                              invert_text=SRC.replace("circle", "square")),
                                         Warn("ui:apply", "the inversion was made under a positive prompt other")),
    "inversion_of_the_source": (Case(inversion={}), Deliberate("the same prompt: no warning")),
    "inversion_under_the_prompts": (Case(inversion={}, invert_source="prompts"),
                                    Deliberate("the source written once (P2P Invert's prompts): no warning")),
    "flux_inversion_under_the_prompts": (Case(flux=True, inversion={"method": "direct"}, invert_source="prompts"),
                                         Deliberate("the source written once on Flux: no warning")),
    "inversion_positive_and_prompts_alike": (Case(inversion={}, invert_source="both"),
                                             Deliberate("both given, the same prompt: no warning")),
    "inversion_positive_other_than_prompts": (
        Case(inversion={}, invert_source="both", invert_text=SRC.replace("big", "small")),
        Warn("ui:invert", "the positive prompt is not the prompts' source")),
    "inversion_without_source": (Case(inversion={}, invert_source="none"),
                                 Error("P2P Invert", ("no source prompt to invert under",
                                                      "Connect P2P Prompt Pair's 'prompts' output to 'prompts'"))),
    "flux_inversion_of_the_source": (Case(flux=True, inversion={"method": "direct"}),
                                     Deliberate("the same prompt: no warning")),
    "noisy_sampler": (Case(sampler={"sampler_name": "euler_ancestral"}),
                      Warn("progress:sampler", "adds fresh random noise")),
}


@pytest.fixture
def progress_texts(monkeypatch):
    """(node id, text) of every progress text the pack sends to ComfyUI's frontend."""
    inprocess_dirs()  # ComfyUI imported as main.py does, before its `server` module
    import server

    sent = []
    monkeypatch.setattr(server.PromptServer.instance, "send_progress_text",
                        lambda text, node_id, sid=None: sent.append((str(node_id), text)), raising=False)
    return sent


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input(name, progress_texts):
    case, outcome = ROWS[name]
    g, ids = build(case)
    if isinstance(outcome, Error):
        with pytest.raises(AssertionError) as e:
            run_inprocess(g)
        msg = str(e.value)
        if outcome.combo is not None and "prompt_outputs_failed_validation" in msg:  # ComfyUI's own check
            assert "value_not_in_list" in msg and outcome.combo in msg, msg
            return
        assert f"{outcome.node}: " in msg, msg
        for part in outcome.parts:
            assert part in msg, f"{part!r} not in {msg}"
        for raw in ("mat1 and mat2", "shapes cannot be multiplied", "Traceback (most recent call last)\nValueError"):
            assert raw not in msg
        return
    outputs = run_inprocess(g)
    assert outputs["save"]["images"], "the result is produced"
    if isinstance(outcome, Warn):
        where, key = outcome.node.split(":")
        node = ids[key]
        if where == "ui":
            texts = outputs.get(node, {}).get("text", [])
        else:
            texts = [t for n, t in progress_texts if n == node]
        assert any(outcome.part in t for t in texts), (texts, progress_texts)
        assert any(n == node and outcome.part in t for n, t in progress_texts), "drawn on the node too"
    else:
        assert not [t for _, t in progress_texts], progress_texts
        if outcome.check is not None:
            outcome.check(outputs)


def test_a_good_graph_warns_nothing(progress_texts):
    g, ids = build(Case())
    outputs = run_inprocess(g)
    assert progress_texts == [] and "text" not in outputs.get(ids["apply"], {})


def test_maps_of_an_earlier_prompt_are_refused_and_a_cached_read_is_not():
    """State belongs to one prompt: the store P2P Apply returns from ComfyUI's cache holds the maps of the
    prompt that sampled through it; a later prompt whose sampler did not use the patched MODEL is refused
    (as a fresh Apply is), while a later prompt that reads the cached sampler output still works."""
    session = InprocessSession()
    g, ids = build(Case())
    session.run(g)
    g[ids["maps"]]["inputs"]["words"] = "square"  # only the maps node changes: the sampler comes from the cache
    session.run(g)
    g[ids["sampler"]]["inputs"]["model"] = [g[ids["apply"]]["inputs"]["model"][0], 0]  # the unpatched MODEL
    with pytest.raises(AssertionError) as e:
        session.run(g)
    assert "P2P Attention Maps: the attention store holds the maps of an earlier run" in str(e.value)
    assert "Connect to 'samples' the LATENT of the sampler that used this P2P Apply's MODEL" in str(e.value)


# --- tokens joined onto the text: a style model (StyleModelApply: Flux Redux), ConditioningConcat / Combine ---
# On the tiny Flux.1 (its T5 context: 256 tokens, 32 wide) with a tiny Redux (tests/tiny_pack/redux.py): 16 image
# tokens. The edit maps the prompts' own tokens; tokens after them have no place in its map.
REDUX_TOKENS = 16


def _redux_graph(where: str, p2p: bool = True) -> Graph:
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family="flux", seed=0)
    pair = g.node("P2PPromptPair", clip=m[1], source="a red circle on the left", edits="a green circle on the left")
    neg = g.node("CLIPTextEncode", clip=m[1], text="")
    redux = g.node("P2PTestTinyRedux", width=32, tokens=REDUX_TOKENS, seed=0)

    def styled(conditioning):
        return g.node("StyleModelApply", conditioning=conditioning, style_model=redux[0],
                      clip_vision_output=redux[1], strength=1.0, strength_type="multiply")

    pos = pair[0]
    if where == "pair":  # StyleModelApply on the pair's conditioning itself
        pos = styled(pair[0])
    elif where == "combined":  # a Redux'd CLIPTextEncode of the source beside the pair's conditioning
        pos = g.node("ConditioningCombine", conditioning_1=pair[0],
                     conditioning_2=styled(g.node("CLIPTextEncode", clip=m[1], text="a red circle on the left")))
    elif where == "concat":  # another prompt pair's tokens after these
        other = g.node("P2PPromptPair", clip=m[1], source="a blue square", edits="a pink square")
        pos = g.node("ConditioningConcat", conditioning_to=pair[0], conditioning_from=other[0])
    elif where == "negative":
        neg = styled(neg)
    lat = g.node("P2PLatentBatch", latent=g.node("EmptySD3LatentImage", width=64, height=64, batch_size=1),
                 prompts=pair[1])
    model = m[0]
    if p2p:
        edit = g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.5")
        model = g.node("P2PApply", model=m[0], edit=edit, self_blocks="auto")[0]
    out = g.node("KSampler", model=model, positive=pos, negative=neg, latent_image=lat, cfg=2.0, seed=2, steps=3,
                 sampler_name="euler", scheduler="simple", denoise=1.0)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix="p2p_redux")
    return g


@pytest.mark.parametrize("where,tokens", [("combined", 256 + REDUX_TOKENS), ("concat", 2 * 256)])
def test_tokens_joined_onto_the_positive_are_refused_before_sampling(where, tokens):
    """Before: ConditioningCombine with a Redux'd conditioning ended in torch's "Expected size for first two
    dimensions of batch2 tensor to be: [1, 272] but got: [1, 256]" inside the model; ConditioningConcat ran, its
    extra tokens outside the edit's map."""
    with pytest.raises(AssertionError) as e:
        run_inprocess(_redux_graph(where))
    msg = str(e.value)
    assert f"P2P Apply: the positive conditioning has {tokens} tokens, but the prompts 256" in msg, msg
    assert "a style model's image tokens, e.g. Flux Redux's" in msg
    assert "without StyleModelApply (Redux) or ConditioningConcat / ConditioningCombine on it" in msg
    assert "Expected size" not in msg and "Traceback (most recent call last)\nRuntimeError" not in msg


def test_a_style_model_on_the_pairs_conditioning_stops_in_comfyuis_own_node():
    """StyleModelApply joins one row of image tokens onto every conditioning it gets; the pair's conditioning
    has a row per prompt, so ComfyUI's node stops (a torch error of StyleModelApply, before any sampling)."""
    with pytest.raises(AssertionError) as e:
        run_inprocess(_redux_graph("pair"))
    msg = str(e.value)
    assert "StyleModelApply" in msg and "Sizes of tensors must match" in msg, msg
    assert "P2P Apply" not in msg


def test_a_style_model_on_the_negative_leaves_the_source_as_plain_sampling():
    """The negative may carry image tokens: the edit leaves unconditional calls alone, so the source item is
    the same image as sampling the same graph without P2P Apply, and the edit differs from it."""
    edited = saved_latent(run_inprocess(_redux_graph("negative")))
    plain = saved_latent(run_inprocess(_redux_graph("negative", p2p=False)))
    assert torch.isfinite(edited).all() and torch.equal(edited[0], plain[0])
    assert (edited[1] - edited[0]).abs().max() > 1e-3
