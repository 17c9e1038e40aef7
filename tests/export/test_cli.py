"""The CLI as a user runs it: real `lepton` processes against a real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_runtime.registry import ModelRegistry

pytestmark = pytest.mark.slow


def lepton(*args: str, registry: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEPTON_MODEL_DIR": str(registry)}
    return subprocess.run(
        [sys.executable, "-m", "lepton_runtime", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=300,
    )


def test_export_predict_promote_rollback_verify(tmp_path: Path, tiny_checkpoint: Path, golden_file: Path) -> None:
    first = lepton(
        "export",
        str(tiny_checkpoint),
        "--name",
        "sent",
        "--golden",
        str(golden_file),
        "--promote",
        "production",
        registry=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "sent@1"
    second = lepton("export", str(tiny_checkpoint), "--name", "sent", "--variant", "fp32", registry=tmp_path)
    assert second.stdout.strip() == "sent@2"

    predicted = lepton("predict", "sent@production", "a great film", "", registry=tmp_path)
    assert predicted.returncode == 1  # one invalid text: reported in place, others still answered
    good, bad = (json.loads(line) for line in predicted.stdout.splitlines())
    assert good["label"] in {"problem", "question"} and good["model"]["version"] == 1
    assert good["model"]["variant"] == "int8" and len(good["model"]["sha256"]) == 64
    assert bad["error"]["code"] == "invalid_input" and bad["index"] == 1

    top = lepton("predict", "sent@2", "a great film", "--top-k", "1", registry=tmp_path)
    (answer,) = (json.loads(line) for line in top.stdout.splitlines())
    assert list(answer["scores"]) == [answer["label"]], "only the best score, the label's"

    from_stdin = lepton("predict", "sent@2", registry=tmp_path, stdin="one line\nanother line\n")
    assert from_stdin.returncode == 0 and len(from_stdin.stdout.splitlines()) == 2

    assert lepton("models", "promote", "sent@2", registry=tmp_path).stdout.strip() == "sent@production -> 2"
    assert lepton("models", "rollback", "sent", registry=tmp_path).stdout.strip() == "sent@production -> 1"
    listed = lepton("models", "list", registry=tmp_path)
    assert "production" in listed.stdout and "int8" in listed.stdout
    shown = json.loads(lepton("models", "show", "sent@1", registry=tmp_path).stdout)
    assert shown["variants"]["int8"]["verified"] is True

    assert lepton("models", "verify", "sent@1", registry=tmp_path).returncode == 0
    target = ModelRegistry(tmp_path).resolve("sent@1").path / "model.onnx"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    verified = lepton("models", "verify", "sent@1", registry=tmp_path)
    assert verified.returncode == 2
    assert "corrupt_model" in verified.stderr and "model.onnx: sha256 differs" in verified.stderr


def test_errors_are_one_line_with_a_code_not_a_traceback(tmp_path: Path) -> None:
    result = lepton("predict", "../../etc", "text", registry=tmp_path)
    assert result.returncode == 2
    assert "invalid_reference" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [[], ["export"], ["predict"], ["models"], ["models", "verify"], ["demo"]])
def test_every_command_explains_itself(command: list[str], tmp_path: Path) -> None:
    result = lepton(*command, "--help", registry=tmp_path)
    assert result.returncode == 0 and "Usage:" in result.stdout and len(result.stdout) > 200
