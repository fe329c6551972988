"""Support for the tests, benchmarks and training scripts (never imported by the engine, p2p_attention/,
nor by nodes/): sampling through ComfyUI as KSampler does (sampling.py) and the peak-memory meter
(memory.py). The tiny models and demo loaders are in p2p_models/."""
