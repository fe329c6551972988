"""Run ComfyUI workflows (API format) from tests, on the real ComfyUI, two ways.

* In-process: `run_inprocess(graph)` validates with `execution.validate_prompt` and runs with
  `execution.PromptExecutor`, the same calls ComfyUI's /prompt handler and prompt worker make.
* Over HTTP: `ComfyServer` starts `main.py` on a free port with this pack (and the test-only
  tiny model loader) in a custom_nodes folder given through `--extra-model-paths-config`,
  queues graphs with `POST /prompt`, polls `/history` and stops the server by its PID.

Graphs are plain API-format dicts `{id: {"class_type": ..., "inputs": {...}}}`; `Graph` builds
them readably: `g = Graph(); m = g.node("P2PTestTinyModel", arch="sd1", seed=0)`, then
`m[0]`, `m[1]` are links `[id, output_index]` to use as inputs of later nodes.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TINY_PACK = REPO / "tests" / "tiny_pack"
PACK_LINK_NAME = "comfyui-prompt-to-prompt"
TINY_PACK_LINK_NAME = "p2p_tiny_test_models"
CUSTOM_NODE_NAMES = (PACK_LINK_NAME, TINY_PACK_LINK_NAME)


# --------------------------------------------------------------------------- graphs


class Node:
    """A node added to a Graph; `node[i]` is the link `[id, i]` to its output i."""

    def __init__(self, graph: dict, node_id: str):
        self.graph = graph
        self.id = node_id

    def __getitem__(self, index: int) -> list:
        return [self.id, int(index)]

    def __repr__(self) -> str:
        return f"Node({self.id!r}, {self.graph[self.id]['class_type']})"


class Graph(dict):
    """An API-format prompt (a dict, JSON-ready). `node(...)` adds a node and returns it.

    Input values that are Nodes mean output 0 of that node; `[id, i]` lists pass through.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._next_id = 1 + max((int(k) for k in self if str(k).isdigit()), default=0)

    def node(self, class_type: str, _id: str | int | None = None, **inputs: Any) -> Node:
        if _id is None:
            while str(self._next_id) in self:
                self._next_id += 1
            _id = self._next_id
            self._next_id += 1
        node_id = str(_id)
        if node_id in self:
            raise ValueError(f"node id {node_id} already in the graph")
        self[node_id] = {
            "class_type": class_type,
            "inputs": {k: (v[0] if isinstance(v, Node) else v) for k, v in inputs.items()},
        }
        return Node(self, node_id)


def node(graph: dict, class_type: str, **inputs: Any) -> Node:
    """Functional spelling of Graph.node; also works on a plain API-format dict."""
    if isinstance(graph, Graph):
        return graph.node(class_type, **inputs)
    node_id = str(1 + max((int(k) for k in graph if str(k).isdigit()), default=0))
    graph[node_id] = {
        "class_type": class_type,
        "inputs": {k: (v[0] if isinstance(v, Node) else v) for k, v in inputs.items()},
    }
    return Node(graph, node_id)


def tiny_txt2img_graph(
    arch: str = "sd1",
    model_seed: int = 0,
    positive: str = "a photo of a cat",
    negative: str = "",
    size: int = 64,
    steps: int = 4,
    seed: int = 0,
    cfg: float = 7.0,
    sampler: str = "euler",
    scheduler: str = "normal",
    prefix: str = "p2p_test",
) -> Graph:
    """Tiny model -> CLIPTextEncode x2 -> EmptyLatentImage -> KSampler -> VAEDecode -> SaveImage.

    The SaveImage node has id "save".
    """
    g = Graph()
    m = g.node("P2PTestTinyModel", arch=arch, seed=model_seed)
    pos = g.node("CLIPTextEncode", clip=m[1], text=positive)
    neg = g.node("CLIPTextEncode", clip=m[1], text=negative)
    lat = g.node("EmptyLatentImage", width=size, height=size, batch_size=1)
    ks = g.node(
        "KSampler",
        model=m[0],
        positive=pos,
        negative=neg,
        latent_image=lat,
        seed=seed,
        steps=steps,
        cfg=cfg,
        sampler_name=sampler,
        scheduler=scheduler,
        denoise=1.0,
    )
    img = g.node("VAEDecode", samples=ks, vae=m[2])
    g.node("SaveImage", _id="save", images=img, filename_prefix=prefix)
    return g


# --------------------------------------------------------------------------- custom nodes


def make_custom_nodes_dir(tmp_path: Path | str) -> Path:
    """A custom_nodes folder linking this pack and the test-only tiny model loader."""
    d = Path(tmp_path) / "custom_nodes"
    d.mkdir(parents=True, exist_ok=True)
    for name, target in ((PACK_LINK_NAME, REPO), (TINY_PACK_LINK_NAME, TINY_PACK)):
        link = d / name
        if link.is_symlink() or link.exists():
            if link.resolve() == target.resolve():
                continue
            link.unlink()
        link.symlink_to(target.resolve(), target_is_directory=True)
    return d


def load_pack_module(name: str = "comfyui_prompt_to_prompt"):
    """Import the repository root as a package under a unique name (no clash with `nodes`).

    Same name as the `pack` fixture of conftest.py, so both share one module.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# --------------------------------------------------------------------------- in-process


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
    from p2p_attention.comfy_bootstrap import bootstrap

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


def _format_error(error: Any, node_errors: Any) -> str:
    return "invalid prompt: " + json.dumps(
        {"error": error, "node_errors": node_errors}, indent=1, default=str
    )


def run_inprocess(api_graph: dict, prompt_id: str | None = None, return_messages: bool = False):
    """Validate and execute an API-format graph in this process; outputs per node id.

    Raises AssertionError with ComfyUI's validation errors or its execution error (message,
    node, traceback). With return_messages, returns (outputs, [(event, data), ...]).
    """
    _init_inprocess()
    execution = _INPROCESS["execution"]
    prompt = json.loads(json.dumps(api_graph))  # what /prompt would receive
    prompt_id = prompt_id or str(uuid.uuid4())
    valid, error, good_outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    if not valid or node_errors:
        raise AssertionError(_format_error(error, node_errors))
    stub = _StubServer()
    executor = execution.PromptExecutor(
        stub, cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0, "ram_inactive": 0}
    )
    executor.execute(prompt, prompt_id, {"client_id": "p2p-tests"}, good_outputs)
    messages = [(event, data) for event, data in executor.status_messages]
    if not executor.success:
        raise AssertionError(_execution_error_text(messages))
    outputs = executor.history_result["outputs"]
    return (outputs, messages) if return_messages else outputs


def _execution_error_text(messages: list) -> str:
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


# --------------------------------------------------------------------------- HTTP server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A real ComfyUI server (main.py) in a subprocess, isolated in `workdir`.

    with ComfyServer(tmp_path) as srv:
        pid = srv.queue(graph); srv.wait(pid); srv.images(pid)
    """

    def __init__(
        self,
        workdir: Path | str,
        custom_nodes_dir: Path | str | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 180.0,
        python: str | None = None,
    ):
        from p2p_attention.comfy_bootstrap import comfyui_root

        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.comfyui_root = comfyui_root()
        self.custom_nodes_dir = (
            Path(custom_nodes_dir) if custom_nodes_dir else make_custom_nodes_dir(self.workdir)
        )
        self.output_dir = self.workdir / "output"
        self.input_dir = self.workdir / "input"
        self.user_dir = self.workdir / "user"
        self.temp_root = self.workdir / "temp_root"  # ComfyUI uses <this>/temp
        self.base_dir = self.workdir / "base"  # keeps the ComfyUI tree's own folders unused
        for p in (
            self.output_dir,
            self.input_dir,
            self.user_dir,
            self.temp_root,
            self.base_dir / "custom_nodes",
        ):
            p.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "server.log"
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.client_id = f"p2p-tests-{uuid.uuid4().hex[:8]}"

    # -- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cfg = self.workdir / "extra_model_paths.yaml"
        cfg.write_text(
            json.dumps({"p2p_tests": {"custom_nodes": str(self.custom_nodes_dir)}})
        )  # JSON is YAML
        return [
            self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--extra-model-paths-config", str(cfg),
            "--disable-api-nodes", "--use-pytorch-cross-attention",
            "--base-directory", str(self.base_dir),
            "--output-directory", str(self.output_dir),
            "--input-directory", str(self.input_dir),
            "--user-directory", str(self.user_dir),
            "--temp-directory", str(self.temp_root),
            "--database-url", "sqlite:///:memory:",
            "--disable-all-custom-nodes", "--whitelist-custom-nodes", *CUSTOM_NODE_NAMES,
            "--preview-method", "none",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> ComfyServer:
        if self.proc is not None:
            raise RuntimeError("server already started")
        self.port = free_port()
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.comfyui_root, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"ComfyUI server exited ({self.proc.returncode}) while starting:\n{self.log_tail()}"
                    )
                try:
                    self._request("GET", "/object_info", timeout=30)
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"ComfyUI server did not answer /object_info within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
                    )
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server process by its PID; kill it if it does not exit in time."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, n_chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "(no server log)"

    # -- HTTP

    def _request(self, method: str, path: str, payload: Any = None, timeout: float = 30) -> tuple[int, bytes]:
        data = None
        headers = {}
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str, timeout: float = 30) -> Any:
        status, body = self._request("GET", path, timeout=timeout)
        if status != 200:
            raise AssertionError(f"GET {path} -> HTTP {status}: {body[:2000]!r}")
        return json.loads(body)

    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def queue(self, api_graph: dict) -> str:
        """POST /prompt; returns the prompt id. Validation errors raise AssertionError."""
        status, body = self._request("POST", "/prompt", {"prompt": api_graph, "client_id": self.client_id})
        try:
            reply = json.loads(body)
        except ValueError:
            raise AssertionError(f"POST /prompt -> HTTP {status}: {body[:2000]!r}") from None
        if status != 200 or reply.get("node_errors"):
            raise AssertionError(_format_error(reply.get("error"), reply.get("node_errors")))
        return reply["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """This prompt's /history entry, or None while it has not finished."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 120.0, poll: float = 0.2) -> dict:
        """Poll /history until the prompt is done; its entry. Execution errors raise AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                break
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"ComfyUI server died while running {prompt_id}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"prompt {prompt_id} not done after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(poll)
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            messages = [tuple(m) for m in status.get("messages", [])]
            raise AssertionError(_execution_error_text(messages))
        return entry

    def run(self, api_graph: dict, timeout: float = 120.0) -> dict:
        """queue + wait; the outputs per node id."""
        return self.wait(self.queue(api_graph), timeout)["outputs"]

    def images(self, prompt_id: str) -> list[tuple[str, str]]:
        """(node_id, filename) of every image of a finished prompt."""
        entry = self.history(prompt_id) or {}
        return [(nid, img["filename"]) for nid, img in output_images(entry.get("outputs", {}))]

    def fetch_image(self, filename: str, subfolder: str = "", folder_type: str = "output") -> bytes:
        """The bytes of an output/temp/input image, through GET /view."""
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        status, body = self._request("GET", f"/view?{q}")
        if status != 200:
            raise AssertionError(f"GET /view?{q} -> HTTP {status}")
        return body
