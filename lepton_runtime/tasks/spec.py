"""What a task is to every surface: the one class a task module fills in, from which the Engine's ``infer``, the
workers, bulk output columns, the client, the CLI command and the HTTP route are derived.

A task runs on a model that does its ``model_task`` (recorded in the model's manifest): classification on a
classifier, zero-shot classification on an embedding model. The engine runs the model as usual; the task then
``finish``es the engine's results with the request's parameters (a zero-shot request's candidate labels), checked
once at the edge by ``check_params``. Nothing here imports onnxruntime, torch or pyarrow at import time: producers
read the same specs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.prediction import Provenance

if TYPE_CHECKING:
    import pyarrow as pa

    from lepton_runtime.inference.engine import Engine


# How an output line carries a vector: base64 float32 (``vector`` and ``encoding``, what the result stream sends) or
# a list of numbers (``embedding``, what a .jsonl output file holds)
VectorForm = Literal["base64", "floats"]


@dataclass(frozen=True)
class Option:
    """A request parameter a task takes besides its texts: a keyword of the client, an option of the CLI command
    (``--name``, repeated for ``multiple``), a field of the HTTP body, a parameter of a bulk job."""

    name: str
    help: str
    multiple: bool = False  # a list of strings (else one string)
    required: bool = False


class TaskSpec:
    """One task, as every surface sees it. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]  # the task's name in requests, job records and metrics, e.g. "text-classification"
    model_task: ClassVar[str]  # the task a model must do (its manifest's), e.g. "embedding" for zero-shot
    command: ClassVar[str]  # the CLI command; its client method is the same with "_" for "-"
    summary: ClassVar[str]  # one line: --help, the OpenAPI summary, the docs
    route: ClassVar[str]  # the path of its HTTP route (made from the spec unless a router of the API serves it)
    # what a model doing this task is called where a person reads it (errors): "a text classifier"
    model_description: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    # an example request, for --help, the OpenAPI document and the docs
    example_texts: ClassVar[tuple[str, ...]] = ("my card payment was declined",)
    example_model: ClassVar[str] = "intents"
    example_params: ClassVar[Mapping[str, Any]] = {}

    @property
    def client_method(self) -> str:
        return self.command.replace("-", "_")

    # -- the request ---------------------------------------------------------------------------------
    def check_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The request's parameters, checked: an InvalidInputError naming the field, its problem and the limit.
        By default a task takes none."""
        params = dict(params or {})
        known = {option.name for option in self.options}
        unknown = sorted(set(params) - known)
        if unknown:
            accepted = ", ".join(sorted(known)) or "none"
            raise InvalidInputError(
                f"{unknown[0]}: not a parameter of {self.name} (it takes: {accepted})",
                issues=[InputIssue(name, f"not a parameter of {self.name}") for name in unknown],
            )
        for option in self.options:
            if option.required and not params.get(option.name):
                raise InvalidInputError(
                    f"{option.name}: required by {self.name} ({option.help})",
                    issues=[InputIssue(option.name, "required")],
                )
        return params

    def http_body(self, texts: Sequence[str], model: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON body of a request to its HTTP route."""
        return {"texts": list(texts), "model": model, **params}

    # -- training -----------------------------------------------------------------------------------
    trainable: ClassVar[bool] = False  # whether `lepton train --task NAME` fine-tunes a model for it

    def training_rows(
        self, data: str | PathLike[str], validation: str | PathLike[str] | None, *, text_field: str = "text",
        label_field: str = "label",
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
        """A training run's rows as they travel with it (and its validation rows), read from the files and checked
        here (``read_training_rows``): a bad row fails at once, naming its line. A task that is not trained says so."""
        if self.trainable:
            return self.read_training_rows(data, validation, text_field=text_field, label_field=label_field)
        from lepton_runtime.tasks import SPECS  # the registry imports this module: read it once asked

        trainable = " or ".join(sorted(name for name, spec in SPECS.items() if spec.trainable))
        raise InvalidInputError(
            f"task: {self.name} trains no model (it runs on {self.model_task} models as they are); train a"
            f" {trainable} model instead",
            issues=[InputIssue("task", "not trainable")],
        )

    def read_training_rows(
        self, data: str | PathLike[str], validation: str | PathLike[str] | None, *, text_field: str,
        label_field: str,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
        """A trainable task's rows from its files (``training_rows`` asks only where ``trainable``)."""
        raise NotImplementedError

    # -- the worker ----------------------------------------------------------------------------------
    def finish(self, engine: Engine, results: list[Any], params: Mapping[str, Any]) -> list[Any]:
        """This task's results from the engine's (one per text, ItemErrors in place); by default they are."""
        return results

    # -- the producer --------------------------------------------------------------------------------
    # The fields of one answered text besides its provenance (what ``as_dict`` of its result gives), with their
    # types: the answer schema of the task's generated HTTP route
    result_fields: ClassVar[Mapping[str, Any]] = {}

    def result_from_dict(self, item: dict[str, Any], provenance: Provenance) -> Any:
        """One answered item (JSON, without its provenance) as the result object the client returns."""
        raise NotImplementedError

    def cli_fields(self, result: Any) -> dict[str, Any]:
        """One text's result as the JSON fields the CLI prints for it (beside the text)."""
        raise NotImplementedError

    # -- bulk output ---------------------------------------------------------------------------------
    gives_vectors: ClassVar[bool] = False  # its part holds an ``embedding`` column: a .npy output file can take it

    def part_columns(self, answered: Sequence[Any]) -> dict[str, pa.Array]:
        """This task's columns of a bulk output part: one row per result (None where the text got none)."""
        raise NotImplementedError

    def line_fields(self, columns: pa.RecordBatch, vectors: VectorForm) -> list[dict[str, Any]]:
        """This task's fields of each row's output line, from its ``part_columns`` (a row that got no result is
        never read). By default the columns as they are."""
        rows: list[dict[str, Any]] = columns.to_pylist()
        return rows
