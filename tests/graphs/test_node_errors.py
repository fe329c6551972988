"""Engine errors as the user reads them: the node's display name, what is wrong, then the wiring fix.

The engine raises one error type with a fix key and never names a node; nodes/messages.py words it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from harness import Graph, run_inprocess

ENGINE = Path(__file__).resolve().parents[2] / "p2p_attention"
STOCK_NODES = ("KSampler", "SamplerCustom", "CLIPTextEncode", "VAEEncode", "EmptyLatentImage", "Latent From Batch")


def _engine_messages() -> list[tuple[str, str | None, str]]:
    """(file:line, fix key, every literal text) of each P2PError(...) and warn(...) call in the engine."""
    out = []
    for path in sorted(ENGINE.rglob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) in ("P2PError", "warn")):
                continue
            fix = next((k.value.value for k in call.keywords if k.arg == "fix" and isinstance(k.value, ast.Constant)),
                       None)
            text = " ".join(c.value for a in call.args for c in ast.walk(a)
                            if isinstance(c, ast.Constant) and isinstance(c.value, str))
            out.append((f"{path.relative_to(ENGINE)}:{call.lineno}", fix, text))
    return out


def _messages(pack):
    return importlib.import_module(pack.__name__ + ".nodes.messages")


def _fix_attributes() -> set[str]:
    """Fix keys an engine class holds for its errors (`unconditional_fix = "one_negative"`)."""
    out = set()
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                out |= {node.value.value for t in node.targets if getattr(t, "id", "").endswith("_fix")}
    return out


def test_every_fix_the_engine_names_has_words_and_every_hint_is_used(pack):
    raised = {fix for _, fix, _ in _engine_messages() if fix} | _fix_attributes()
    fixes = set(_messages(pack).FIXES)
    assert len(raised) >= 15
    assert raised - fixes == set(), "fix keys without words in nodes/messages.py"
    assert fixes - raised == set(), "hints no engine error asks for"


def test_the_engine_names_no_node(pack):
    names = [cls.DISPLAY_NAME for cls in importlib.import_module(pack.__name__ + ".nodes").NODES]
    assert "P2P Apply" in names and len(names) >= 10
    messages = _engine_messages()
    assert len(messages) >= 60  # the scan sees the engine's errors and warnings
    for where, _, text in messages:
        for name in (*names, *STOCK_NODES, "Connect", "connect"):
            assert name not in text, f"{where}: {text!r} names {name!r}"


def test_explain_prefixes_the_node_and_appends_the_fix_once(pack):
    from p2p_attention.errors import P2PError

    m = _messages(pack)
    err = m.explain("P2P Apply", P2PError("the latent batch has 1 item(s).", fix="latent_batch"))
    assert str(err) == f"P2P Apply: the latent batch has 1 item(s). {m.FIXES['latent_batch']}"
    assert m.explain("P2P Latent Batch", err) is err  # a nested sampler wrapper does not name it twice
    assert str(m.explain("P2P Invert", P2PError("steps must be at least 1."))) == "P2P Invert: steps must be at least 1."


def _graph(edits: str, batch_through_p2p: bool) -> Graph:
    g = Graph()
    m = g.node("P2PTestTinyModel", arch="sd1", seed=0)
    pair = g.node("P2PPromptPair", clip=m[1], source="a red cat sitting on a chair", edits=edits)
    neg = g.node("CLIPTextEncode", clip=m[1], text="")
    lat = g.node("EmptyLatentImage", width=64, height=64, batch_size=1)
    if batch_through_p2p:
        lat = g.node("P2PLatentBatch", latent=lat, prompts=pair[1])
    swap = g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.4")
    model = g.node("P2PApply", model=m[0], edit=swap)
    out = g.node("KSampler", model=model[0], positive=pair[0], negative=neg, latent_image=lat, seed=1, steps=2,
                 cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0)
    img = g.node("VAEDecode", samples=out, vae=m[2])
    g.node("SaveImage", _id="save", images=img, filename_prefix="p2p_errors")
    return g


@pytest.mark.parametrize(
    "edits,batch_through_p2p,expected",
    [
        # At the node: a word swap with a word added.
        ("a red fluffy cat sitting on a chair", True,
         "P2P Word Swap: edit prompt 1 ('a red fluffy cat sitting on a chair'): Word swap needs the same number of "
         "words in both prompts: the source has 7, the edit has 8. Use P2P Refine to add or remove words."),
        # While the stock KSampler runs the patched MODEL: the latent was not batched for the edit.
        ("a red dog sitting on a chair", False,
         "P2P Apply: the latent batch has 1 item(s) but the prompts need 2 (the source and 1 edit(s)). Feed the "
         "sampler the source latent through P2P Latent Batch."),
    ],
    ids=["at_the_node", "while_sampling"],
)
def test_a_real_graph_reports_the_node_and_the_fix(edits, batch_through_p2p, expected):
    g = _graph(edits, batch_through_p2p)
    with pytest.raises(AssertionError) as e:
        run_inprocess(g)
    assert expected in str(e.value)
    sampler = next(k for k, v in g.items() if v["class_type"] == "KSampler")
    during = f"(Raised while KSampler (node {sampler}) sampled this P2P Apply's MODEL.)"
    assert (during in str(e.value)) == (not batch_through_p2p)


def _sampling_error(server, g: Graph) -> dict:
    """The execution_error message of a graph that fails (what ComfyUI's error dialog shows)."""
    prompt_id = server.queue(g)
    with pytest.raises(AssertionError):
        server.wait(prompt_id, timeout=300)
    messages = server.history(prompt_id)["status"]["messages"]
    return next(data for event, data in messages if event == "execution_error")


@pytest.mark.server
def test_an_error_while_sampling_names_the_node_to_fix_over_http(comfy_server):
    """Raised inside KSampler's sampling (the latent was not batched for the edit): ComfyUI's error dialog
    is titled by the node that ran, KSampler, so the message starts with the node to fix and says which
    node was sampling; the same on ComfyUI 0.3.75 and 0.33."""
    g = _graph("a red dog sitting on a chair", batch_through_p2p=False)
    sampler = next(k for k, v in g.items() if v["class_type"] == "KSampler")
    g[sampler]["_meta"] = {"title": "My sampler"}  # the title the user sees on the canvas
    err = _sampling_error(comfy_server, g)
    assert (err["node_id"], err["node_type"]) == (sampler, "KSampler"), err  # the dialog's node
    msg = err["exception_message"].strip()
    assert msg == ("P2P Apply: the latent batch has 1 item(s) but the prompts need 2 (the source and 1 edit(s)). "
                   "Feed the sampler the source latent through P2P Latent Batch. (Raised while My sampler "
                   f"(node {sampler}) sampled this P2P Apply's MODEL.)"), msg
    del g[sampler]["_meta"]
    msg = _sampling_error(comfy_server, g)["exception_message"].strip()
    assert msg.startswith("P2P Apply: the latent batch has 1 item(s)")
    assert msg.endswith(f"(Raised while KSampler (node {sampler}) sampled this P2P Apply's MODEL.)"), msg
