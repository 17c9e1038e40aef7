"""The root ``lepton`` command: a small group that finds each package's commands through entry points."""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points

import click

from lepton_runtime import __version__
from lepton_runtime.errors import LeptonError

COMMAND_GROUP = "lepton.commands"


class PluginGroup(click.Group):
    """A click group whose commands are loaded from the ``lepton.commands`` entry points on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({ep.name for ep in entry_points(group=COMMAND_GROUP)} | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        for ep in entry_points(group=COMMAND_GROUP):
            if ep.name == name:
                try:
                    command = ep.load()
                except ImportError as error:  # a package's optional dependencies are not installed
                    return _unavailable(name, ep.value, error)
                return command if isinstance(command, click.Command) else None
        return None


def _unavailable(name: str, target: str, error: ImportError) -> click.Command:
    """A stand-in for a command whose module cannot be imported: it says why and how to fix it."""

    def explain() -> None:
        raise click.ClickException(f"'lepton {name}' is unavailable ({target}: {error}); run 'make install'")

    return click.Command(name, callback=explain, help=f"(unavailable: {error})")


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    """Run the CLI; a LeptonError becomes one line on stderr and exit code 2 (no traceback)."""
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
