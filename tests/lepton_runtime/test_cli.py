"""The root `lepton` command: every command of the table loads; a missing optional extra is named with how to
install it; any other import error surfaces with its traceback instead of looking like an install problem."""

from __future__ import annotations

import subprocess
import sys

from lepton_runtime.cli import COMMANDS, cli


def _lepton_without(module: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`lepton ARGUMENTS` in a fresh interpreter where importing ``module`` fails as if it were not installed."""
    probe = f"import sys; sys.modules[{module!r}] = None; sys.argv = ['lepton', *sys.argv[1:]]; " + (
        "from lepton_runtime.cli import main; main()"
    )
    return subprocess.run([sys.executable, "-c", probe, *arguments], capture_output=True, text=True, timeout=120)


def test_every_command_of_the_table_is_a_click_command() -> None:
    import click

    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name, name
        assert "unavailable" not in (command.help or ""), name


def test_a_missing_extra_names_the_extra_to_install() -> None:
    done = _lepton_without("uvicorn", "api", "--allow-anonymous", "--port", "1")
    assert done.returncode == 2, done.stderr
    assert "uvicorn is not installed: install the 'api' extra" in done.stderr and "Traceback" not in done.stderr


def test_any_other_import_error_surfaces_with_its_traceback() -> None:
    done = _lepton_without("producer.client", "submit", "--help")  # as a typo inside the module would fail
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "producer.client" in done.stderr
    assert "make install" not in done.stderr and "extra" not in done.stderr
