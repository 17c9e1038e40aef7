"""What a bulk job reads, planned before it is recorded: datasets named by location, never a server path through the
API, and a store that does not answer said as such (503, transient), not as a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_runtime.errors import DataStoreUnavailableError, ForbiddenError
from lepton_runtime.jobs.data_store import DataStore
from producer.bulk_sources import is_dataset_location, output_location, plan_input
from tests.queue_fixtures import free_port


def _plan(store: DataStore, source: object, *, confined: bool) -> object:
    return plan_input(store, source, job_id="j", tenant="acme", chunk_size=10, text_field="text", id_field="id",  # type: ignore[arg-type]
                      confined=confined)  # fmt: skip


def test_locations_name_datasets_and_files_name_inline_texts(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    for dataset in ("s3://bucket/corpus/", "corpus/*.parquet", str(tmp_path / "corpus"), "a.parquet", "b.jsonl.gz"):
        assert is_dataset_location(dataset), dataset
    assert not is_dataset_location(str(tmp_path / "reviews.jsonl"))


def test_the_api_never_reads_a_path_of_the_server(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "store"))
    with pytest.raises(ForbiddenError, match="outside tenant 'acme'"):
        _plan(store, "/etc/hostname", confined=True)
    with pytest.raises(ForbiddenError, match=r"out: .* outside tenant 'acme'"):
        output_location(store, str(tmp_path / "elsewhere"), job_id="j", tenant="acme", confined=True)
    inline = _plan(store, ["a text", "another"], confined=True)
    assert inline.job_input.location.startswith(store.tenant_root("acme") + "/inputs/")  # type: ignore[attr-defined]


def test_a_store_that_does_not_answer_is_an_outage_not_a_crash(s3_credentials: None) -> None:
    store = DataStore("s3://bucket/lepton", endpoint_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(DataStoreUnavailableError, match="does not answer"):
        _plan(store, "s3://bucket/lepton/tenants/acme/corpus/", confined=True)
    with pytest.raises(DataStoreUnavailableError, match="does not answer"):
        _plan(store, ["a text"], confined=True)  # inline texts are written to it first
