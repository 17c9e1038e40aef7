"""Model management: versions in a directory or an object store, with manifests and checksums, aliases, references."""

from lepton_runtime.registry.configured import open_registry
from lepton_runtime.registry.manifest import FileEntry, Manifest, VariantInfo
from lepton_runtime.registry.references import ModelReference, validate_alias, validate_model_name
from lepton_runtime.registry.store import ModelRegistry, ModelVersion, StagedVersion

__all__ = [
    # the store
    "ModelRegistry",
    "open_registry",
    "ModelVersion",
    "StagedVersion",
    # manifests
    "FileEntry",
    "Manifest",
    "VariantInfo",
    # references
    "ModelReference",
    "validate_alias",
    "validate_model_name",
]
