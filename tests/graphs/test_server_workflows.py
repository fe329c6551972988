"""The pack's nodes in real workflows: stock sampler nodes in-process, maps and mask over HTTP."""

import pytest
from harness import Graph, output_images, run_inprocess


def _p2p_front(g: Graph, arch="sd1", size=(64, 64), edits="a blue dog sitting on a chair"):
    m = g.node("P2PTestTinyModel", arch=arch, seed=0)
    pair = g.node("P2PPromptPair", clip=m[1], source="a red cat sitting on a chair", edits=edits)
    neg = g.node("CLIPTextEncode", clip=m[1], text="blurry")
    empty = g.node("EmptyLatentImage", width=size[1], height=size[0], batch_size=1)
    lat = g.node("P2PLatentBatch", latent=empty, prompts=pair[1])
    swap = g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.4")
    rew = g.node("P2PReweight", prompts=pair[1], weights="dog: 2", cross_replace="0.8", self_replace="0.4",
                 edit=swap)
    return m, pair, neg, lat, rew


def _finish(g, m, samples, prefix):
    img = g.node("VAEDecode", samples=samples, vae=m[2])
    g.node("SaveImage", _id="save", images=img, filename_prefix=prefix)
    return img


@pytest.mark.parametrize("sampler_node", ["KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"])
def test_stock_sampler_nodes_sample_the_patched_model(sampler_node):
    g = Graph()
    m, pair, neg, lat, edit = _p2p_front(g)
    model = g.node("P2PApply", model=m[0], edit=edit)
    common = dict(model=model[0], positive=pair[0], negative=neg)
    if sampler_node == "KSampler":
        out = g.node("KSampler", **common, latent_image=lat, seed=1, steps=4, cfg=5.0, sampler_name="ddim",
                     scheduler="ddim_uniform", denoise=1.0)[0]
    elif sampler_node == "KSamplerAdvanced":
        out = g.node("KSamplerAdvanced", **common, latent_image=lat, add_noise="enable", noise_seed=1, steps=4,
                     cfg=5.0, sampler_name="euler", scheduler="normal", start_at_step=0, end_at_step=10000,
                     return_with_leftover_noise="disable")[0]
    else:
        sigmas = g.node("BasicScheduler", model=model[0], scheduler="normal", steps=4, denoise=1.0)
        sampler = g.node("KSamplerSelect", sampler_name="dpmpp_2m")
        if sampler_node == "SamplerCustom":
            out = g.node("SamplerCustom", **common, add_noise=True, noise_seed=1, cfg=5.0, sampler=sampler,
                         sigmas=sigmas, latent_image=lat)[0]
        else:
            guider = g.node("CFGGuider", **common, cfg=5.0)
            noise = g.node("RandomNoise", noise_seed=1)
            out = g.node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                         latent_image=lat)[0]
    _finish(g, m, out, f"p2p_{sampler_node}")
    images = output_images(run_inprocess(g))
    assert len(images) == 2  # the source and the edit


def _maps_graph(arch, size, prefix):
    g = Graph()
    m, pair, neg, lat, edit = _p2p_front(g, arch=arch, size=size)
    blend = g.node("P2PLocalBlend", prompts=pair[1], words="cat, dog", subtract="", threshold=0.5,
                   subtract_threshold=0.3, start_blend=0.2, dilation=1, edit=edit)
    model = g.node("P2PApply", model=m[0], edit=blend, map_downsample=2)
    ks = g.node("KSampler", model=model[0], positive=pair[0], negative=neg, latent_image=lat, seed=1, steps=4,
                cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0)
    img = _finish(g, m, ks, prefix)
    maps = g.node("P2PAttentionMaps", attention_store=model[1], samples=ks, prompt_index=1, words="dog",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="grid", images=maps[0], filename_prefix=prefix + "_grid")
    mask_img = g.node("MaskToImage", mask=maps[1])
    g.node("SaveImage", _id="mask", images=mask_img, filename_prefix=prefix + "_mask")
    return g


@pytest.mark.server
@pytest.mark.parametrize("arch,size", [("sd1", (64, 64)), ("sd1", (96, 64)), ("sdxl", (64, 96))])
def test_maps_and_mask_through_the_server(comfy_server, arch, size):
    prompt_id = comfy_server.queue(_maps_graph(arch, size, f"maps_{arch}_{size[0]}x{size[1]}"))
    comfy_server.wait(prompt_id, timeout=300)
    outputs = comfy_server.history(prompt_id)["outputs"]
    assert len(outputs["save"]["images"]) == 2
    assert len(outputs["grid"]["images"]) == 1 and len(outputs["mask"]["images"]) == 1
    from PIL import Image

    mask = outputs["mask"]["images"][0]
    path = comfy_server.output_dir / mask.get("subfolder", "") / mask["filename"]
    assert Image.open(path).size == (size[1], size[0])  # the mask has the image's size


def test_the_server_starts_cleanly(comfy_server):
    """ComfyUI's own startup, as `make demo-ui` shows it: every optional node of comfy_extras imports and its
    template and docs packages are there (requirements-test.txt, scripts/setup_env.sh), so the log has no
    traceback, no IMPORT FAILED and no boxed ERROR."""
    comfy_server.object_info()  # started
    log = comfy_server.log_path.read_text(errors="replace")
    # The startup only: the session server's later lines hold the tracebacks of the bad graphs other tests send.
    startup = log.split("To see the GUI go to")[0]
    assert len(startup) < len(log), "the server's log has no startup line"
    bad = [line for line in startup.splitlines()
           if any(s in line for s in ("Traceback", "IMPORT FAILED", "ERROR", "not installed", "package not found"))]
    assert not bad, "\n".join(bad) + "\n\n" + log[-4000:]
