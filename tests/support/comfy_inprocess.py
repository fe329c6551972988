"""Workflows run in-process: `execution.validate_prompt` and `execution.PromptExecutor`, the same
calls ComfyUI's /prompt handler and prompt worker make."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from comfy_pack import CUSTOM_NODE_NAMES, REPO, make_custom_nodes_dir


class _StubServer:
    """What PromptExecutor needs of server.PromptServer: it records every message."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}
        self.messages: list[tuple[Any, Any, Any]] = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data, sid))

    def queue_updated(self):
        pass


_INPROCESS: dict[str, Any] = {}


def inprocess_dirs() -> dict[str, Path]:
    """Folders of the in-process ComfyUI: custom_nodes, output, input, temp, user (created once)."""
    _init_inprocess()
    return dict(_INPROCESS["dirs"])


def _init_inprocess() -> None:
    """Import ComfyUI like main.py does and load the custom nodes, once per process."""
    if not _INPROCESS:
        _load_inprocess()
    if _INPROCESS["error"]:
        raise AssertionError(_INPROCESS["error"])


def _load_inprocess() -> None:
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))  # appended: the repo's nodes/ must not shadow ComfyUI's nodes.py
    from p2p_models.comfy_bootstrap import bootstrap

    comfy_root = str(bootstrap())
    # ComfyUI first, whatever other modules did to sys.path: `import nodes` must find its nodes.py.
    sys.path.remove(comfy_root)
    sys.path.insert(0, comfy_root)
    root = tempfile.mkdtemp(prefix="p2p_comfy_inproc_")
    atexit.register(shutil.rmtree, root, True)
    root = Path(root)
    dirs = {k: root / k for k in ("output", "input", "temp", "user")}
    for p in dirs.values():
        p.mkdir()
    dirs["custom_nodes"] = make_custom_nodes_dir(root)

    import folder_paths
    from comfy.cli_args import args

    if "nodes" not in sys.modules:
        # As main.py: ComfyUI's utils/ package before `nodes` puts comfy/ (with utils.py) first on sys.path.
        import utils.extra_config  # noqa: F401

    import nodes

    if not (Path(nodes.__file__).resolve().parent / "comfy").is_dir():
        raise AssertionError(f"`import nodes` found {nodes.__file__}, not ComfyUI's nodes.py: fix sys.path")
    import execution

    folder_paths.set_output_directory(str(dirs["output"]))
    folder_paths.set_input_directory(str(dirs["input"]))
    folder_paths.set_temp_directory(str(dirs["temp"]))
    folder_paths.set_user_directory(str(dirs["user"]))
    folder_paths.add_model_folder_path("custom_nodes", str(dirs["custom_nodes"]))
    import server

    if getattr(server.PromptServer, "instance", None) is None:
        # As main.py: the PromptServer object exists before the nodes load (never started here).
        # ComfyUI >= 0.33's built-in nodes_replacements.py registers into its node_replace_manager
        # and fails to import without it.
        server.PromptServer(asyncio.new_event_loop())
    # Load only our two packs, not whatever else sits in the ComfyUI tree's custom_nodes.
    args.disable_all_custom_nodes = True
    args.whitelist_custom_nodes = list(CUSTOM_NODE_NAMES)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    finally:
        logging.getLogger().removeHandler(handler)
    _INPROCESS.update(dirs=dirs, nodes=nodes, execution=execution, error=None)
    failed = [n for n in CUSTOM_NODE_NAMES if n not in nodes.LOADED_MODULE_DIRS]
    if failed:
        msgs = [r.getMessage() for r in records]
        ours = str(dirs["custom_nodes"])
        log = "\n".join(
            m for i, m in enumerate(msgs) if ours in m or (i + 1 < len(msgs) and ours in msgs[i + 1])
        )
        _INPROCESS["error"] = f"custom node packs failed to import in-process: {failed}\n{log}"


def format_error(error: Any, node_errors: Any) -> str:
    return "invalid prompt: " + json.dumps(
        {"error": error, "node_errors": node_errors}, indent=1, default=str
    )


def run_inprocess(api_graph: dict, prompt_id: str | None = None, return_messages: bool = False):
    """Validate and execute an API-format graph in this process; outputs per node id.

    Raises AssertionError with ComfyUI's validation errors or its execution error (message,
    node, traceback). With return_messages, returns (outputs, [(event, data), ...]).
    """
    return InprocessSession().run(api_graph, prompt_id, return_messages)


class InprocessSession:
    """One PromptExecutor for several prompts, as one ComfyUI server: node outputs are cached between
    them (CLASSIC cache), so a later prompt reuses what an earlier one computed."""

    def __init__(self):
        _init_inprocess()
        execution = _INPROCESS["execution"]
        self.executor = execution.PromptExecutor(
            _StubServer(), cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0, "ram_inactive": 0}
        )

    def run(self, api_graph: dict, prompt_id: str | None = None, return_messages: bool = False):
        """As run_inprocess, on this session's executor."""
        execution = _INPROCESS["execution"]
        prompt = json.loads(json.dumps(api_graph))  # what /prompt would receive
        prompt_id = prompt_id or str(uuid.uuid4())
        valid, error, good_outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
        if not valid or node_errors:
            raise AssertionError(format_error(error, node_errors))
        executor = self.executor
        executor.execute(prompt, prompt_id, {"client_id": "p2p-tests"}, good_outputs)
        messages = [(event, data) for event, data in executor.status_messages]
        if not executor.success:
            raise AssertionError(execution_error_text(messages))
        outputs = executor.history_result["outputs"]
        return (outputs, messages) if return_messages else outputs


def execution_error_text(messages: list) -> str:
    for event, data in messages:
        if event == "execution_error":
            tb = "".join(data.get("traceback") or [])
            return (
                f"ComfyUI execution failed in node {data.get('node_id')} ({data.get('node_type')}): "
                f"{data.get('exception_type')}: {data.get('exception_message')}\n{tb}"
            )
        if event == "execution_interrupted":
            return f"ComfyUI execution interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return f"ComfyUI execution failed: {messages}"


def output_images(outputs: dict) -> list[tuple[str, dict]]:
    """(node_id, {"filename", "subfolder", "type"}) of every image in a run's outputs."""
    return [(nid, img) for nid, out in outputs.items() for img in (out or {}).get("images", [])]


def inprocess_image_path(image: dict) -> Path:
    """Where an in-process image record ({"filename", "subfolder", "type"}) is on disk."""
    dirs = inprocess_dirs()
    base = dirs["temp"] if image.get("type") == "temp" else dirs["output"]
    return base / image.get("subfolder", "") / image["filename"]
