"""`make demo`: real Prompt-to-Prompt edits on the pack's embedded demo model, through a real ComfyUI.

Starts ComfyUI's server (main.py, CPU, headless) with the pack, queues the demo workflows with
POST /prompt, and writes every source/edit PNG plus one contact sheet to demo_out/. It then runs
the demo-model templates (workflows/api/p2p_demo*.json) as they are and draws every template's
thumbnail from those runs (a checkpoint template's from its demo-model twin): demo_out/thumbnails/,
and workflows/<name>.jpg, where ComfyUI's template browser reads them, unless --out is given.
`--ui` instead starts ComfyUI with the pack on http://127.0.0.1:8188 for a person to use.

Only the pack is linked into ComfyUI's custom nodes here (never the test-only tests/tiny_pack).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests" / "support"))  # the HTTP workflow runner lives with the test helpers
sys.path.append(str(REPO / "training"))  # the shapes renderer draws the demo's "photo"

from harness import ComfyServer, Graph  # noqa: E402
from workflow_util import load_builder  # noqa: E402

WORKFLOWS = REPO / "workflows"
HELP_PICTURES = REPO / "web" / "docs" / "images"
PACK_NAME = "comfyui-prompt-to-prompt"  # the pack's folder name in custom_nodes: its template browser entry
SIZE = 128  # EmptyLatentImage assumes 8x: 128 px gives the demo model's 16x16 latent (32 px images)
STEPS = 20
SEED = 7
NEG = ""
A = "a big red circle on the left and a small blue square on the right"
# Real-image editing: a scene drawn by the dataset's renderer (not by the model), inverted and edited.
PHOTO = "p2p_demo_photo.png"  # also the demo real-image template's Load Image file
PHOTO_CAPTION = "a big yellow circle on the left and a big blue square on the right"
PHOTO_EDIT = "a big yellow circle on the left and a big red square on the right"
PHOTO_SEED = 20261127


def pack_custom_nodes(work: Path) -> Path:
    """A custom_nodes folder with this pack alone, under the folder name users clone it as."""
    d = work / "custom_nodes"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():  # a previous run's links (e.g. of the test-only tiny pack) go
        if old.is_symlink() and old.name != PACK_NAME:
            old.unlink()
    link = d / PACK_NAME
    if not (link.is_symlink() and link.resolve() == REPO.resolve()):
        if link.is_symlink():
            link.unlink()
        link.symlink_to(REPO.resolve(), target_is_directory=True)
    return d


def prepare_input(input_dir: Path) -> None:
    """What the templates' Load Image nodes open: the demo photo and ComfyUI's own example.png."""
    from p2p_models.comfy_bootstrap import comfyui_root

    input_dir.mkdir(parents=True, exist_ok=True)
    draw_photo(input_dir / PHOTO)
    example = Path(comfyui_root()) / "input" / "example.png"
    if example.is_file() and not (input_dir / example.name).exists():
        shutil.copyfile(example, input_dir / example.name)


def draw_photo(path: Path) -> None:
    """The demo's real image: 32x32 px, as the demo VAE (2x) encodes it to a 16x16 latent."""
    import numpy as np
    from PIL import Image
    from shapes_dataset import parse_caption, render

    Image.fromarray(render(parse_caption(PHOTO_CAPTION), np.random.default_rng(PHOTO_SEED))).save(path)


def _front(g: Graph, source: str, edits: list[str]):
    m = g.node("P2PDemoModel")
    pair = g.node("P2PPromptPair", clip=m[1], source=source, edits="\n".join(edits))
    neg = g.node("CLIPTextEncode", clip=m[1], text=NEG)
    empty = g.node("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=1)
    lat = g.node("P2PLatentBatch", latent=empty, prompts=pair[1])
    return m, pair, neg, lat


def _sample_and_save(g: Graph, m, model, pair, neg, lat, prefix: str, save_id: str):
    ks = g.node("KSampler", model=model, positive=pair[0], negative=neg, latent_image=lat, seed=SEED, steps=STEPS,
                cfg=5.0, sampler_name="ddim", scheduler="ddim_uniform", denoise=1.0)
    img = g.node("VAEDecode", samples=ks, vae=m[2])
    g.node("SaveImage", _id=save_id, images=img, filename_prefix=prefix)
    return ks, img


def demo_graphs() -> list[tuple[str, str, list[str], list[str], Graph, list[str]]]:
    """(name, source, edits, edit labels, graph, save node ids) for each demo: naive edit vs P2P side by side."""
    demos = []

    def edit_demo(name, source, edits, labels, build_edit, extra=None):
        g = Graph()
        m, pair, neg, lat = _front(g, source, edits)
        _sample_and_save(g, m, m[0], pair, neg, lat, f"{name}_naive", "naive")
        edit = build_edit(g, pair)
        patched = g.node("P2PApply", model=m[0], edit=edit, self_attn_min_downsample=1, map_downsample=2)
        ks, img = _sample_and_save(g, m, patched[0], pair, neg, lat, f"{name}_p2p", "p2p")
        saves = ["naive", "p2p"]
        if extra:
            saves += extra(g, patched, ks, img)
        demos.append((name, source, edits, labels, g, saves))

    edit_demo(
        "word_swap", A,
        ["a big green circle on the left and a small blue square on the right",
         "a big red circle on the left and a small yellow square on the right"],
        ["red -> green", "blue -> yellow"],
        lambda g, p: g.node("P2PWordSwap", prompts=p[1], cross_replace="0.8", self_replace="0.6"),
    )
    edit_demo(
        "refine", "a red circle above a blue square",
        ["a big red circle above a small blue square"],
        ["+ big, + small"],
        lambda g, p: g.node("P2PRefine", prompts=p[1], cross_replace="0.8", self_replace="0.6"),
    )
    edit_demo(
        "reweight", A, [A], ["small x 4"],
        lambda g, p: g.node("P2PReweight", prompts=p[1], weights="small: 4", cross_replace="1.0",
                            self_replace="0.6"),
    )

    def maps(g, patched, ks, img):
        mp = g.node("P2PAttentionMaps", attention_store=patched[1], samples=ks, prompt_index=1, words="circle",
                    threshold=0.0, image=img)
        g.node("SaveImage", _id="maps", images=mp[0], filename_prefix="local_blend_maps")
        g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=mp[1]), filename_prefix="local_blend_mask")
        return ["maps", "mask"]

    edit_demo(
        "local_blend", A,
        ["a big green circle on the left and a small blue square on the right"],
        ["red -> green, blend 'circle'"],
        lambda g, p: g.node(
            "P2PLocalBlend", prompts=p[1], words="circle", subtract="", threshold=0.3, subtract_threshold=0.3,
            start_blend=0.2, dilation=1,
            edit=g.node("P2PWordSwap", prompts=p[1], cross_replace="0.8", self_replace="0.6")),
        extra=maps,
    )
    demos.append(real_image_demo())
    return demos


def real_image_demo():
    """Direct inversion of a photo, then the same edit naive (the inverted noise, the edited prompt)
    and with P2P (Word Swap + Local Blend, the source item held on the inversion path)."""
    g = Graph()
    m = g.node("P2PDemoModel")
    pair = g.node("P2PPromptPair", clip=m[1], source=PHOTO_CAPTION, edits=PHOTO_EDIT)
    neg = g.node("CLIPTextEncode", clip=m[1], text=NEG)
    photo = g.node("LoadImage", image=PHOTO)
    g.node("SaveImage", _id="photo", images=photo, filename_prefix="real_image_photo")
    enc = g.node("VAEEncode", pixels=photo, vae=m[2])
    inv = g.node("P2PInvert", model=m[0], positive=pair[0], negative=neg, latent=enc, method="direct",
                 steps=STEPS, guidance=5.0, inner_iterations=10)
    lat = g.node("P2PLatentBatch", latent=inv[0], prompts=pair[1])
    swap = g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.6")
    edit = g.node("P2PLocalBlend", prompts=pair[1], edit=swap, words="square", subtract="", threshold=0.3,
                  subtract_threshold=0.3, start_blend=0.2, dilation=1)
    patched = g.node("P2PApply", model=m[0], edit=edit, inversion=inv[1], self_attn_min_downsample=1,
                     map_downsample=2)
    runs = {}
    for save, model in (("naive", m[0]), ("p2p", patched[0])):
        ks = g.node("KSamplerAdvanced", model=model, add_noise="disable", noise_seed=0, steps=STEPS, cfg=5.0,
                    sampler_name="ddim", scheduler="ddim_uniform", start_at_step=0, end_at_step=10000,
                    return_with_leftover_noise="disable", positive=pair[0], negative=neg, latent_image=lat)
        runs[save] = (ks, g.node("VAEDecode", samples=ks, vae=m[2]))
        g.node("SaveImage", _id=save, images=runs[save][1], filename_prefix=f"real_image_{save}")
    ks, img = runs["p2p"]  # the maps of the P2P run's store
    mp = g.node("P2PAttentionMaps", attention_store=patched[1], samples=ks, prompt_index=1, words="square",
                threshold=0.0, image=img)
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=mp[1]), filename_prefix="real_image_mask")
    return ("real_image", PHOTO_CAPTION, [PHOTO_EDIT], ["blue -> red, blend 'square'"], g,
            ["photo", "naive", "p2p", "mask"])


THUMB = 384  # px, square: both frontends show a custom node template's <name>.jpg in a square card


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _wrapped(draw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return [*lines, line] if line else lines


def changed_pixels(source, edit):
    """|edit - source| summed over the channels, as a grey image (black: unchanged, white: >= 255)."""
    import numpy as np
    from PIL import Image

    a = np.asarray(source.convert("RGB"), np.int16)
    b = np.asarray(edit.convert("RGB"), np.int16)
    return Image.fromarray(np.clip(np.abs(b - a).sum(-1), 0, 255).astype(np.uint8)).convert("RGB")


def thumbnail(title: str, model_line: str, note: str, tiles: list[tuple[str, object]]):
    """A template's card: its name in words and the model top left, then up to three images of its run,
    each with its caption, on a 2x2 grid."""
    from PIL import Image, ImageDraw

    margin, gap = 12, 12
    cell = (THUMB - 2 * margin - gap) // 2
    card = Image.new("RGB", (THUMB, THUMB), (30, 30, 34))
    draw = ImageDraw.Draw(card)
    y = margin + 4
    for text, size, fill in ((title, 26, (255, 255, 255)), (model_line, 17, (200, 200, 210)), (note, 15, (160, 160, 170))):
        font = _font(size)
        for line in _wrapped(draw, text, font, cell):
            draw.text((margin, y), line, fill=fill, font=font)
            y += size + 4
        y += 6
    for k, (label, img) in enumerate(tiles[:3]):
        cx, cy = margin + ((k + 1) % 2) * (cell + gap), margin + ((k + 1) // 2) * (cell + gap)
        card.paste(img.convert("RGB").resize((cell, cell), Image.NEAREST), (cx, cy))
        font = _font(15)
        strip = Image.new("RGB", (cell, 24), (0, 0, 0))
        card.paste(Image.blend(card.crop((cx, cy + cell - 24, cx + cell, cy + cell)), strip, 0.6),
                   (cx, cy + cell - 24))
        draw.text((cx + 5, cy + cell - 21), label, fill=(255, 255, 255), font=font)
    return card


def template_tiles(wf, api: dict, outputs: dict, fetch) -> list[tuple[str, object]]:
    """(caption, image) of a template run: its main SaveImage's batch (source first), then the mask preview
    if it has one, else where the first edit changed the source."""
    from PIL import Image

    def images(node_id):
        return [Image.open(io.BytesIO(fetch(im["filename"], im.get("subfolder", ""), im.get("type", "output"))))
                for im in outputs[node_id]["images"]]

    main = next(nid for nid, n in api.items() if n["class_type"] == "SaveImage"
                and n["inputs"].get("filename_prefix") == f"p2p/{wf.name}")
    tiles = list(zip(wf.labels, images(main)))
    masks = [nid for nid, n in api.items() if n["class_type"] == "PreviewImage"]
    if masks:
        words = next(n["inputs"]["words"] for n in api.values() if n["class_type"] == "P2PAttentionMaps")
        tiles.append((f"mask of '{words}'", images(masks[0])[0]))
    else:
        tiles.append(("changed pixels", changed_pixels(tiles[0][1], tiles[1][1])))
    return tiles


CARD_MODELS = {"sd1": "SD1.5 checkpoint", "sdxl": "SDXL checkpoint", "flux": "Flux.1 dev checkpoint",
               "sd35": "SD3.5 checkpoint", "chroma": "Chroma model files", "zimage": "Z-Image Turbo model files",
               "qwen_image": "Qwen-Image model files", "flux2_klein": "Flux.2 klein model files",
               "flux2_dev": "Flux.2 dev model files", "lumina2": "Lumina 2 model files"}


def template_card(wf, twin_tiles: list[tuple[str, object]] | None):
    """A demo template's card shows its run; a checkpoint template's its demo twin's, or (no demo model of its
    family) says so, with no images."""
    if wf.arch == "demo":
        model = "Flux demo model" if "flux" in wf.name else "demo model"
        return thumbnail(wf.title, model, "runs as it is", twin_tiles)
    if twin_tiles is None:
        note = f"needs the checkpoint: no demo model of this family. Edits: {', '.join(wf.labels[1:])}"
        return thumbnail(wf.title, CARD_MODELS[wf.arch], note, [])
    return thumbnail(wf.title, CARD_MODELS[wf.arch], "preview drawn by its demo-model twin", twin_tiles)


def run_templates(srv: ComfyServer, thumbs: list[Path]) -> list[Path]:
    """Runs every demo-model template's API twin as it is and writes every template's <name>.jpg into each
    folder of `thumbs` (a checkpoint template's from its demo twin's run)."""
    builder = load_builder()
    workflows = builder.all_workflows()
    tiles, written = {}, []
    for wf in workflows:
        if wf.arch != "demo":
            continue
        api = json.loads((WORKFLOWS / "api" / f"{wf.name}.json").read_text())
        t = time.time()
        outputs = srv.wait(srv.queue(api), timeout=600)["outputs"]
        tiles[wf.name] = template_tiles(wf, api, outputs, srv.fetch_image)
        print(f"  template {wf.name}: {time.time() - t:.1f}s")
    for folder in thumbs:
        folder.mkdir(parents=True, exist_ok=True)
    for wf in workflows:
        card = template_card(wf, tiles.get(wf.twin or wf.name))
        for folder in thumbs:
            path = folder / f"{wf.name}.jpg"
            card.save(path, "JPEG", quality=90)
            written.append(path)
    return written


def contact_sheet(rows: list[tuple[str, list[tuple[str, Path]]]], path: Path, cell: int = 160) -> None:
    """One row per run; square images fill a cell, wide ones (the maps grid) keep their aspect."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    label_h, title_w = 28, 170

    def fitted(p: Path) -> Image.Image:
        img = Image.open(p).convert("RGB")
        return img.resize((max(cell, round(cell * img.width / img.height)), cell), Image.NEAREST)

    laid = [(title, [(label, fitted(p)) for label, p in cells]) for title, cells in rows]
    width = title_w + max(sum(im.width for _, im in cells) for _, cells in laid)
    sheet = Image.new("RGB", (width, (cell + label_h) * len(laid)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (title, cells) in enumerate(laid):
        y = r * (cell + label_h)
        draw.text((6, y + cell // 2), title, fill=(255, 255, 255), font=font)
        x = title_w
        for label, img in cells:
            sheet.paste(img, (x, y))
            draw.text((x + 3, y + cell + 3), label[:40], fill=(220, 220, 220), font=font)
            x += img.width
    sheet.save(path)


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_demo(out: Path, thumbnails_to: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = REPO / ".tmp" / "demo_server"
    shutil.rmtree(work, ignore_errors=True)
    rows, written = [], []
    t0 = time.time()
    with ComfyServer(work, custom_nodes_dir=pack_custom_nodes(work)) as srv:
        print(f"ComfyUI server up at {srv.url} (pid {srv.pid}) in {time.time() - t0:.0f}s")
        prepare_input(srv.input_dir)
        for name, source, edits, edit_labels, graph, saves in demo_graphs():
            t = time.time()
            prompt_id = srv.queue(graph)
            outputs = srv.wait(prompt_id, timeout=600)["outputs"]
            print(f"  {name}: {time.time() - t:.1f}s  source {source!r} -> {edits}")
            labels = ["source", *[f"edit{i + 1}" for i in range(len(edits))]]
            captions = ["source", *edit_labels]
            for save in saves:
                files = []
                for i, im in enumerate(outputs[save]["images"]):
                    label = labels[i] if save in ("naive", "p2p") else save
                    dst = out / f"{name}_{save}_{label}.png"
                    shutil.copyfile(srv.output_dir / im.get("subfolder", "") / im["filename"], dst)
                    files.append((captions[i] if save in ("naive", "p2p") else label, dst))
                written += [f for _, f in files]
                rows.append((f"{name}: {save}", files))
        thumbs = run_templates(srv, [out / "thumbnails", *([thumbnails_to] if thumbnails_to else [])])
    if thumbnails_to == WORKFLOWS:  # the node help pages show some thumbnails (tests/test_help_pages.py)
        for pic in sorted(HELP_PICTURES.glob("*.jpg")):
            shutil.copyfile(WORKFLOWS / pic.name, pic)
            thumbs.append(pic)
    sheet = out / "contact_sheet.png"
    contact_sheet(rows, sheet)
    print("\nWrote:")
    for p in written + thumbs:
        print(f"  {_shown(p)}")
    print(f"  {_shown(sheet)}  <- open this first")
    print(f"Done in {time.time() - t0:.0f}s.")


# The template browser, as both frontends (1.32.9 and 1.49.6) label it: the left sidebar's button, or the
# ComfyUI logo menu (top left); the pack's templates are under Extensions. tests/browser/test_browser.py clicks these.
TEMPLATES_BUTTON = "Templates"
MENU_ITEM = "Browse Templates"
EXTENSIONS = "Extensions"
UI_HINT = (f"Open the template browser ({TEMPLATES_BUTTON} in the left sidebar, or the ComfyUI logo menu > "
           f"{MENU_ITEM}), then {EXTENSIONS} > {PACK_NAME}: the p2p_demo* templates run as they are on the "
           f"pack's demo model (press Run); the p2p_sd15_* / p2p_sdxl_* ones need that checkpoint.")


def run_ui(port: int) -> None:
    from p2p_models.comfy_bootstrap import comfyui_root

    work = REPO / ".tmp" / "demo_ui"
    work.mkdir(parents=True, exist_ok=True)
    nodes_dir = pack_custom_nodes(work)
    prepare_input(work / "input")
    cfg = work / "extra_model_paths.yaml"
    cfg.write_text(json.dumps({"p2p_demo": {"custom_nodes": str(nodes_dir)}}))  # JSON is YAML
    print(f"Starting ComfyUI with the pack on http://127.0.0.1:{port} (Ctrl-C to stop).")
    print(UI_HINT)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    subprocess.run([sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                    "--extra-model-paths-config", str(cfg), "--disable-api-nodes",
                    "--use-pytorch-cross-attention", "--input-directory", str(work / "input"),
                    "--output-directory", str(REPO / "demo_out" / "ui")],
                   cwd=comfyui_root(), env=env, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, help="output folder (default demo_out/; given: the thumbnails stay there)")
    ap.add_argument("--ui", action="store_true", help="start ComfyUI with the pack for a person to use")
    ap.add_argument("--port", type=int, default=8188)
    args = ap.parse_args()
    if args.ui:
        run_ui(args.port)
    else:
        run_demo(args.out or REPO / "demo_out", None if args.out else WORKFLOWS)


if __name__ == "__main__":
    main()
