"""Model builders and demo loaders, outside the engine (p2p_attention never imports this package):
tiny models from ComfyUI's own configs and classes for tests and benchmarks (tiny_unet.py: SD1/SDXL;
tiny_dit.py: Flux.1, SD3/SD3.5; tiny_chroma.py, tiny_flux2.py, tiny_qwen.py, tiny_zimage.py), the embedded demo models (demo_unet.py, demo_dit.py) with their one
weights check (weights.py), and ComfyUI's import bootstrap for scripts (comfy_bootstrap.py)."""
