"""Which registry the settings name: the directory (LEPTON_MODEL_DIR) or an object store (LEPTON_MODEL_STORE)."""

from __future__ import annotations

from lepton_runtime.jobs.connection import connect_with
from lepton_runtime.registry.notices import ANNOUNCE_TIMEOUT_S, RegistryNotices
from lepton_runtime.registry.store import ModelRegistry
from lepton_runtime.settings import LeptonSettings


def open_registry(settings: LeptonSettings) -> ModelRegistry:
    """The registry of ``settings``: an object store when LEPTON_MODEL_STORE is set (versions load from this host's
    verified copies under LEPTON_MODEL_CACHE_DIR), else the directory LEPTON_MODEL_DIR. Its alias moves are told to
    the fleet through the settings' Redis (registry/notices.py); it publishes as LEPTON_TENANT."""
    registry: ModelRegistry
    if settings.model_store:
        from lepton_runtime.registry.object_store import ObjectStoreRegistry

        cache_dir = settings.model_cache_dir.expanduser()
        registry = ObjectStoreRegistry(
            settings.model_store, cache_dir, endpoint_url=settings.s3_endpoint_url,
            cache_budget_bytes=int(settings.model_cache_budget_mb * 1e6),
        )  # fmt: skip
    else:
        registry = ModelRegistry(settings.model_dir)
    quick = connect_with(settings, timeout_s=ANNOUNCE_TIMEOUT_S, retries=0)
    registry.on_alias_move = RegistryNotices(quick, fleet_expected=settings.broker_configured).announce
    registry.publisher = settings.tenant  # a local `lepton export` or `lepton train` publishes as LEPTON_TENANT
    return registry
