"""A real ComfyUI server (main.py) over HTTP with the pack, for workflow and browser tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from comfy_inprocess import execution_error_text, format_error, output_images
from comfy_pack import CUSTOM_NODE_NAMES, make_custom_nodes_dir


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
        from p2p_models.comfy_bootstrap import comfyui_root

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
            raise AssertionError(format_error(reply.get("error"), reply.get("node_errors")))
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
            raise AssertionError(execution_error_text(messages))
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
