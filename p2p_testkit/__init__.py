"""Support for the tests, benchmarks and training scripts (never imported by the engine, p2p_attention/,
nor by nodes/): sampling through ComfyUI as KSampler does (sampling.py) and the peak-memory meter
(memory.py). The model builders and demo loaders (p2p_attention/model_build.py, dit_build.py,
demo_model.py, demo_dit_model.py, comfy_bootstrap.py) are to move here too (issue 25, left for later)."""
