"""Run ComfyUI workflows (API format) from tests, on the real ComfyUI, two ways.

* In-process (`comfy_inprocess.py`): `run_inprocess(graph)` validates with
  `execution.validate_prompt` and runs with `execution.PromptExecutor`, the same calls ComfyUI's
  /prompt handler and prompt worker make.
* Over HTTP (`comfy_http.py`): `ComfyServer` starts `main.py` on a free port with this pack (and
  the test-only tiny model loader) in a custom_nodes folder given through
  `--extra-model-paths-config`, queues graphs with `POST /prompt`, polls `/history` and stops the
  server by its PID.

Graphs (`comfy_graph.py`) are plain API-format dicts; `comfy_pack.py` links the packs into a
custom_nodes folder and imports the pack as ComfyUI does. This module gathers what tests use.
"""

from comfy_graph import Graph, Node, tiny_txt2img_graph
from comfy_http import ComfyServer, free_port
from comfy_inprocess import (
           InprocessSession,
           inprocess_dirs,
           inprocess_image_path,
           output_images,
           run_inprocess,
)
from comfy_pack import CUSTOM_NODE_NAMES, REPO, TINY_PACK, load_pack_module, make_custom_nodes_dir

__all__ = ["CUSTOM_NODE_NAMES", "REPO", "TINY_PACK", "ComfyServer", "Graph", "InprocessSession", "Node", "free_port",
           "inprocess_dirs", "inprocess_image_path", "load_pack_module", "make_custom_nodes_dir", "output_images",
           "run_inprocess", "tiny_txt2img_graph"]
