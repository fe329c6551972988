"""The two workflow runners of tests/support/harness.py, on the real ComfyUI: in-process and over HTTP."""

from __future__ import annotations

import io

import pytest
from harness import (
    Graph,
    inprocess_image_path,
    load_pack_module,
    output_images,
    run_inprocess,
    tiny_txt2img_graph,
)
from PIL import Image


def _assert_png(data: bytes, size: int = 64) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    assert img.size == (size, size)


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_inprocess_tiny_workflow_saves_an_image(arch):
    outputs = run_inprocess(tiny_txt2img_graph(arch, prefix=f"inproc_{arch}"))
    images = output_images(outputs)
    assert [nid for nid, _ in images] == ["save"]
    _assert_png(inprocess_image_path(images[0][1]).read_bytes())


def test_inprocess_reports_validation_errors():
    g = Graph()
    g.node("EmptyLatentImage", width=64, height=64, batch_size=1)
    g.node("SaveImage", images=["1", 0], filename_prefix="bad")  # LATENT into IMAGE
    with pytest.raises(AssertionError, match="return_type_mismatch"):
        run_inprocess(g)


def test_inprocess_reports_execution_errors():
    g = Graph()
    m = g.node("P2PTestTinyModel", arch="sd1", seed=0)
    lat = g.node("EmptySD3LatentImage", width=64, height=64, batch_size=1)  # 16 channels: valid graph,
    img = g.node("VAEDecode", samples=lat, vae=m[2])  # but the 4-channel VAE fails at run time
    g.node("SaveImage", images=img, filename_prefix="bad")
    with pytest.raises(AssertionError, match=r"execution failed in node 3 \(VAEDecode\)"):
        run_inprocess(g)


@pytest.mark.server
def test_server_lists_every_pack_node(comfy_server):
    info = comfy_server.object_info()
    pack = load_pack_module()
    display = {cls.NODE_ID: cls.DISPLAY_NAME for cls in pack.nodes.NODES}
    assert display, "the pack lists no nodes"
    missing = sorted((set(display) | {"P2PTestTinyModel"}) - set(info))
    assert not missing, f"not in /object_info: {missing}\n{comfy_server.log_tail()}"
    for node_id, name in display.items():
        assert info[node_id]["display_name"] == name


@pytest.mark.server
def test_server_runs_tiny_workflow_to_a_saved_image(comfy_server):
    prompt_id = comfy_server.queue(tiny_txt2img_graph("sd1", prefix="http_sd1"))
    comfy_server.wait(prompt_id, timeout=120)
    images = comfy_server.images(prompt_id)
    assert len(images) == 1 and images[0][0] == "save"
    filename = images[0][1]
    on_disk = comfy_server.output_dir / filename
    assert on_disk.is_file()
    _assert_png(on_disk.read_bytes())
    _assert_png(comfy_server.fetch_image(filename))
