"""The names of the tasks a model can do, shared by engines, exports and producers, and the check that a model
does the task it is asked for (a producer checks at submit, an engine before it runs)."""

from __future__ import annotations

from lepton_runtime.errors import WrongTaskError

TEXT_CLASSIFICATION = "text-classification"
EMBEDDING = "embedding"
TOKEN_CLASSIFICATION = "token-classification"
# What each task is called where a person reads it (errors, --help).
DESCRIPTIONS = {
    TEXT_CLASSIFICATION: "a text classifier",
    EMBEDDING: "an embedding model",
    TOKEN_CLASSIFICATION: "an entity extractor",
}
# Which client call, HTTP route and export option serve each task (for the error that points to them).
ENTRY_POINTS = {
    TEXT_CLASSIFICATION: "classify() / POST /v1/classify",
    EMBEDDING: "embed() / POST /v1/embeddings",
    TOKEN_CLASSIFICATION: "entities() / POST /v1/entities",
}


def require_task(model: str, actual: str, wanted: str) -> None:
    """Raise WrongTaskError unless ``actual`` (the model's task, from its manifest) is ``wanted``."""
    if actual != wanted:
        raise WrongTaskError(
            f"model {model} is {DESCRIPTIONS.get(actual, f'a {actual} model')}, not"
            f" {DESCRIPTIONS.get(wanted, f'a {wanted} model')}: use {ENTRY_POINTS.get(actual, 'its own task')}"
            f" for it, or a model exported with --task {wanted}"
        )
