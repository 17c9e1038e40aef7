"""``lepton export`` and ``lepton models``: publish checkpoints and manage the versions in the registry."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lepton_runtime import constants
from lepton_runtime.jobs.audit import record_command
from lepton_runtime.registry import ModelRegistry, open_registry
from lepton_runtime.registry.owners import LEGACY_OWNER
from lepton_runtime.settings import LeptonSettings, load_settings

console = Console(stderr=True)


def _opened() -> tuple[LeptonSettings, ModelRegistry]:
    """The settings, read once per command, and the registry they name (commands that change it also audit)."""
    settings = load_settings()
    return settings, open_registry(settings)


def _registry() -> ModelRegistry:
    return _opened()[1]


@click.command("export")
@click.argument("checkpoint", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name in the registry (lower-case letters, digits, . _ -).")
@click.option(
    "--task",
    type=click.Choice(["text-classification", "embedding", "token-classification"]),
    default="text-classification",
    show_default=True,
    help="text-classification: a fine-tuned sequence classifier; embedding: a sentence-transformers directory"
    " (mean pooling and L2 normalisation go inside the graph); token-classification: a fine-tuned token"
    " classifier (entities; fp32 only for now).",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    type=click.Choice(["fp32", "int8", "fp16"]),
    help="Variants to publish (repeat). Default: fp32, plus int8 when --golden is given.",
)
@click.option(
    "--golden",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL of real texts ({"text", "label"}; labels optional) that gates int8 and fp16'
    " (embeddings: at least 2,000 texts).",
)
@click.option("--promote", "alias", default=None, help="Point this alias (e.g. production) at the new version.")
@click.option(
    "--max-length",
    type=int,
    default=None,
    help="Tokens per text the model keeps; longer texts are truncated."
    f" [default: {constants.DEFAULT_MAX_SEQUENCE_LENGTH} for a classifier, the checkpoint's own for embeddings]",
)
@click.option("--opset", default=constants.DEFAULT_OPSET, show_default=True, help="ONNX opset.")
def export_command(
    checkpoint: Path,
    name: str,
    task: str,
    variants: tuple[str, ...],
    golden: Path | None,
    alias: str | None,
    max_length: int | None,
    opset: int,
) -> None:
    """Export CHECKPOINT (a Hugging Face sequence classifier or a sentence encoder with the head `lepton train`
    gives it, or a sentence-transformers model with --task embedding: by default the all-MiniLM-L6-v2
    installed with lepton-runtime) to ONNX and publish it.

    A classifier's fp32 graph (with ONNX Runtime's transformer fusions) must match PyTorch within 1e-4 at
    batch 1/7/64 x sequence 8/128, or nothing is published. int8 must stay within 0.5 point of
    fp32's accuracy on the golden set (99% agreement without labels). fp16 is gated on a GPU,
    else published as unverified. An embedding model's vectors must have cosine >= 0.9999 to
    PyTorch's for every row at those shapes; its int8 needs mean cosine >= 0.99 to fp32 and
    top-10 neighbour overlap >= 0.90 over the golden texts. Prints NAME@VERSION on stdout.

    \b
    Examples:
      lepton export ./checkpoints/sentiment --name sentiment --golden val.jsonl --promote production
      lepton export --task embedding --name minilm --golden texts.jsonl --promote production
    """
    from export.publish import export_checkpoint

    if checkpoint is None:
        if task != "embedding":
            raise click.UsageError("give the CHECKPOINT directory to export (only --task embedding has a default)")
        from lepton_runtime.training.base_models import default_base_model

        checkpoint = default_base_model()

    settings, registry = _opened()
    with console.status("exporting") as status:

        def report(message: str) -> None:
            console.log(message)
            status.update(message)

        version = export_checkpoint(
            checkpoint,
            registry,
            name,
            task=task,
            variants=variants or None,
            golden=golden,
            promote=alias,
            max_sequence_length=max_length,
            opset=opset,
            report=report,
        )
    record_command(settings, "publish", version.reference, f"exported from {checkpoint}")
    click.echo(version.reference)


@click.group()
def models() -> None:
    """List, inspect, verify, promote, roll back, delete and share published model versions. A model name belongs to
    the tenant that first published it (LEPTON_TENANT for these commands); other tenants run it once it is shared."""


@models.command("list")
@click.argument("name", required=False)
@click.option("--tenant", default=None, help="Only the models this tenant owns.")
def list_models(name: str | None, tenant: str | None) -> None:
    """List models (or the versions of NAME) with their owners, aliases and variants."""
    registry = _registry()
    table = Table("model", "owner", "version", "aliases", "variants", "created", "metrics")
    for model in [name] if name else registry.list_models():
        owner = registry.owner(model) or LEGACY_OWNER
        if tenant is not None and owner.tenant != tenant:
            continue
        aliases = registry.aliases(model)
        for version in registry.versions(model):
            manifest = version.manifest
            table.add_row(
                model,
                f"{owner.tenant}{' (shared)' if owner.shared else ''}",
                str(version.version),
                ", ".join(a for a, v in sorted(aliases.items()) if v == version.version),
                ", ".join(f"{k}{'' if v.verified else ' (unverified)'}" for k, v in manifest.variants.items()),
                manifest.created_at,
                ", ".join(
                    f"{short}={manifest.metrics[key]:.3f}"
                    for key, short in (("validation_accuracy", "val acc"), ("golden_fp32_accuracy", "golden acc"))
                    if isinstance(manifest.metrics.get(key), float)
                ),
            )
    Console().print(table)


@models.command()
@click.argument("reference")
def show(reference: str) -> None:
    """Print the manifest of REFERENCE (name, name@version or name@alias) as JSON."""
    click.echo(json.dumps(_registry().resolve(reference).manifest.model_dump(), indent=2))


@models.command()
@click.argument("reference")
def verify(reference: str) -> None:
    """Check every file of REFERENCE against its manifest sha256; exit 2 naming any file that differs."""
    version = _registry().verify(reference)
    click.echo(f"{version.reference}: {len(version.manifest.files)} files verified")


@models.command()
@click.argument("reference")
@click.option("--alias", default=constants.PRODUCTION_ALIAS, show_default=True, help="Alias to move.")
def promote(reference: str, alias: str) -> None:
    """Point ALIAS at the version REFERENCE names (the previous target is kept for rollback)."""
    settings, registry = _opened()
    version = registry.promote(reference, alias)
    record_command(settings, "promote", version.reference, f"alias {alias}")
    click.echo(f"{version.name}@{alias} -> {version.version}")


@models.command()
@click.argument("name")
@click.option("--alias", default=constants.PRODUCTION_ALIAS, show_default=True, help="Alias to move back.")
def rollback(name: str, alias: str) -> None:
    """Point ALIAS of NAME back at the version it named before its last move."""
    settings, registry = _opened()
    version = registry.rollback(name, alias)
    record_command(settings, "rollback", version.reference, f"alias {alias}")
    click.echo(f"{name}@{alias} -> {version.version}")


@models.command()
@click.argument("reference")
@click.option("--force", is_flag=True, help="Also drop aliases that point at this version.")
def delete(reference: str, force: bool) -> None:
    """Delete one version (refused while an alias points at it, unless --force)."""
    settings, registry = _opened()
    version = registry.delete(reference, force=force)
    record_command(settings, "delete", version.reference, "forced" if force else "")
    click.echo(f"deleted {version.reference}")


@models.command()
@click.argument("name")
@click.option("--private", is_flag=True, help="Let only its owner (and the operator tenant) run it again.")
def share(name: str, private: bool) -> None:
    """Let every tenant run model NAME (a model is its owner's alone until shared); --private takes that back."""
    settings, registry = _opened()
    owner = registry.share(name, not private)
    record_command(settings, "share", name, "every tenant may run it" if owner.shared else "private")
    click.echo(f"{name}: owner {owner.tenant}, {'shared with every tenant' if owner.shared else 'private'}")
