"""The README's commands, and the examples the ``lepton up`` banner prints, run as written after ``lepton demo``.

A new user's first hour follows the README: each ``bash`` and ``python`` block is run here, line by line, in a
folder that looks like a fresh checkout after ``make demo`` (the demo's ``intents@production`` is the tiny model,
published before the demo so that it reuses it instead of fine-tuning MiniLM for minutes). ``lepton up &`` and
``lepton api ... &`` start in the background and are waited for, as a user waits for their "ready" lines; the
setup lines (``make``, ``pip``, ``source``) are what CI itself runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from lepton_runtime.datasets import BANKING77_DEV
from lepton_runtime.registry import ModelRegistry

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parent.parent
README = REPOSITORY / "README.md"
VENV_BIN = Path(sys.executable).parent
# Lines a user runs to get here; CI runs them itself (`make install`, `make demo` is run below as `lepton demo`).
SETUP_PREFIXES = ("make ", "python3 -m venv", ".venv/bin/pip ", "source .venv/bin/activate")
# What a background server prints once it is started (`lepton up`'s ready line, `lepton api`'s address), and where a
# server answers once it serves (the API's liveness route; None: the line is enough).
READY_LINES = {"lepton up": "lepton up: ready", "lepton api": "Lepton API on http://127.0.0.1:8000"}
READY_URLS = {"lepton up": None, "lepton api": "http://127.0.0.1:8000/healthz"}
SERVER_READY_TIMEOUT_S = 180.0
COMMAND_TIMEOUT_S = 600.0
DEMO_TIMEOUT_S = 900.0


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced ``bash`` and ``python`` block, in order."""
    return [(match[1], match[2]) for match in re.finditer(r"```(bash|python)\n(.*?)```", text, re.DOTALL)]


def bash_commands(block: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, blank lines and comment lines dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def banner_commands(help_text: str) -> list[str]:
    """The example commands of ``lepton up --help`` (the lines after "Then, in another shell")."""
    _, _, examples = help_text.partition("Then, in another shell")
    return [line.strip() for line in examples.splitlines() if line.strip().startswith("lepton ")]


@dataclass
class Server:
    """A command a user starts with ``&``: its process and what it printed."""

    command: str
    process: subprocess.Popen[str]
    ready: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)

    def read(self, marker: str) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if marker in line:
                self.ready.set()
        self.ready.set()  # it ended: the waiter then sees the exit code

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C: `lepton up` stops its workers, Flower, Redis
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Checkout:
    """A folder laid out like the repository after ``make demo``, and the environment of a shell in it."""

    root: Path
    env: dict[str, str]
    servers: list[Server] = field(default_factory=list)

    def run(self, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", command], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, command: str) -> Server:
        name = next((prefix for prefix in READY_LINES if command.startswith(prefix)), None)
        assert name is not None, f"README starts `{command}` in the background; this test knows no ready line for it"
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=self.root, env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        server = Server(command, process)
        self.servers.append(server)
        threading.Thread(target=server.read, args=(READY_LINES[name],), daemon=True).start()
        assert server.ready.wait(SERVER_READY_TIMEOUT_S), f"`{command}` not ready:\n" + "\n".join(server.lines)
        assert process.poll() is None, f"`{command}` exited {process.returncode}:\n" + "\n".join(server.lines)
        if url := READY_URLS[name]:
            wait_until_answers(url, process)
        return server


def wait_until_answers(url: str, process: subprocess.Popen[str]) -> None:
    """Until ``url`` answers 200 (the server's socket is open), or the server dies or takes too long."""
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)  # polling a socket that is not open yet
    raise AssertionError(f"{url} never answered 200")


@pytest.fixture(scope="module")
def after_demo(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, golden_file: Path
) -> Iterator[Checkout]:
    """A checkout after ``lepton demo`` (what ``make demo`` runs), with the tiny model as ``intents@production``."""
    from export.publish import export_checkpoint

    root = tmp_path_factory.mktemp("checkout")
    (root / "lepton_runtime").symlink_to(REPOSITORY / "lepton_runtime")  # the shipped data, at the README's path
    registry = ModelRegistry(root / "models")
    export_checkpoint(tiny_checkpoint, registry, "intents", golden=golden_file, promote="production")
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEPTON_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"  # what `source .venv/bin/activate` does
    env["LEPTON_DATA_STORE"] = str(root / "lepton-data")
    checkout = Checkout(root, env)
    demo = checkout.run("lepton demo", timeout_s=DEMO_TIMEOUT_S)
    assert "succeeded" in demo.stderr + demo.stdout
    yield checkout
    for server in reversed(checkout.servers):
        server.stop()


def test_readme_commands_and_the_banner_run_as_written(after_demo: Checkout) -> None:
    checkout = after_demo
    ran: list[str] = []
    for language, block in readme_blocks(README.read_text()):
        if language == "python":
            script = checkout.root / f"readme-block-{len(ran)}.py"
            script.write_text(block)
            result = checkout.run(f"python {script.name}")
            assert "label" in result.stdout, result.stdout
            ran.append(block)
            continue
        for command in bash_commands(block):
            if command.startswith(SETUP_PREFIXES):
                continue
            if command.endswith("&"):
                checkout.start(command.removesuffix("&").strip())
            else:
                checkout.run(command)
            ran.append(command)
    help_text = checkout.run("lepton up --help").stdout
    banner = banner_commands(help_text)
    assert banner, "the banner shows no example commands"
    for command in banner:
        if command not in ran:
            checkout.run(command)
            ran.append(command)

    # what the commands promised, not only their exit codes
    dataset_rows = sum(1 for line in BANKING77_DEV.read_text().splitlines() if line.strip())
    labels = [json.loads(line) for line in (checkout.root / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == dataset_rows and all("label" in row for row in labels)
    registry = ModelRegistry(checkout.root / "models")
    assert {"intents", "intents-head", "minilm"} <= set(registry.list_models())
    assert any(command.startswith("curl") for command in ran), "the README's HTTP example did not run"


def test_the_parsers_see_what_a_reader_sees() -> None:
    block = "make demo\n# a comment\nlepton submit a.jsonl \\\n  --model m   # trailing\n\nlepton jobs list\n"
    assert bash_commands(block) == ["make demo", "lepton submit a.jsonl --model m   # trailing", "lepton jobs list"]
    assert banner_commands("text\nThen, in another shell:\n  lepton classify x --model m\n  not a command\n") == [
        "lepton classify x --model m"
    ]
    blocks = readme_blocks("```bash\nls\n```\ntext\n```python\nprint(1)\n```")
    assert blocks == [("bash", "ls\n"), ("python", "print(1)\n")]
