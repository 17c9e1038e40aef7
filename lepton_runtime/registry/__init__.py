"""Model management: versions on disk with manifests and checksums, aliases, references."""

from lepton_runtime.registry.manifest import FileEntry, Manifest, VariantInfo
from lepton_runtime.registry.references import ModelReference, validate_alias, validate_model_name
from lepton_runtime.registry.store import ModelRegistry, ModelVersion, StagedVersion

__all__ = [
    # the store
    "ModelRegistry",
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
