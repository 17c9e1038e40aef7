"""The HTTP route of every task whose spec names one and no router of its own serves (``POST /v1/zero-shot``...):
its body and answer schemas made from the spec, the texts answered when done, a bad text in its place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field, create_model

from lepton_runtime.constants import MAX_DEADLINE_S
from lepton_runtime.prediction import ItemError
from lepton_runtime.tasks import SPECS, TaskSpec
from producer.api.dependencies import SUBMIT, Client, CurrentCaller, Settings, few_texts_fit
from producer.api.errors import error_responses
from producer.api.schemas import ErrorBody, ModelProvenance, reference_field


class TaskResultOut(BaseModel):
    """One text's answer: the task's result fields (its spec's ``result_fields``), or an error."""

    model_config = ConfigDict(extra="forbid")  # a field the spec does not declare fails here, not in a client

    index: int
    error: ErrorBody | None = Field(default=None, description="Set instead of a result when this text was invalid.")


class TaskResponse(BaseModel):
    results: list[TaskResultOut]
    model: ModelProvenance | None = None


def answer_models(spec: TaskSpec) -> tuple[type[TaskResultOut], type[TaskResponse]]:
    """The answer of ``spec``'s route: each text's index and the spec's result fields (absent for a text that got an
    error), or its error; the model's provenance."""
    prefix = _schema_prefix(spec)
    fields: dict[str, Any] = {name: (kind | None, None) for name, kind in spec.result_fields.items()}
    result: type[TaskResultOut] = create_model(f"{prefix}ResultOut", __base__=TaskResultOut, **fields)
    results: Any = list[result]  # type: ignore[valid-type]
    answer: type[TaskResponse] = create_model(f"{prefix}Response", __base__=TaskResponse, results=(results, ...))
    return result, answer


def _schema_prefix(spec: TaskSpec) -> str:
    """What the spec's schemas are called in the OpenAPI document: ``ZeroShot`` for ``zero-shot``."""
    return "".join(part.capitalize() for part in spec.command.split("-"))


def task_routes(served: Iterable[str]) -> APIRouter:
    """A router with a route for each spec whose ``route`` is not among the paths ``served`` already."""
    router = APIRouter(responses=error_responses(401, 403, 404, 413, 422, 429, 503, 504, 500))
    taken = set(served)
    for spec in SPECS.values():
        if spec.route not in taken:
            _add_route(router, spec)
    return router


def request_model(spec: TaskSpec) -> type[BaseModel]:
    """The body of ``spec``'s route: texts, model, deadline_ms and the task's parameters, taken strictly."""
    fields: dict[str, Any] = {
        "texts": (list[str], Field(min_length=1, description="Texts (at most LEPTON_MAX_ITEMS).")),
        "model": (str, reference_field()),
        "deadline_ms": (
            int | None,
            Field(
                default=None,
                ge=1,
                le=int(MAX_DEADLINE_S * 1000),
                description="Not run (answered 504 expired) unless a worker starts it within this many ms.",
            ),
        ),
    }
    for option in spec.options:
        kind: Any = list[str] if option.multiple else str
        fields[option.name] = (kind if option.required else kind | None, Field(
            ... if option.required else None, description=option.help))  # fmt: skip
    example = spec.http_body(spec.example_texts, spec.example_model, spec.example_params)
    config = ConfigDict(strict=True, json_schema_extra={"examples": [example]})
    model: type[BaseModel] = create_model(f"{_schema_prefix(spec)}Request", __config__=config, **fields)
    return model


def _add_route(router: APIRouter, spec: TaskSpec) -> None:
    body_model = request_model(spec)
    result_model, answer_model = answer_models(spec)
    option_names = [option.name for option in spec.options]

    def answer(
        body: BaseModel,
        settings: Settings,
        client: Client,
        caller: CurrentCaller,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> TaskResponse:
        request: Any = body
        few_texts_fit(request.texts, settings, client)
        params = {name: getattr(request, name) for name in option_names if getattr(request, name) is not None}
        deadline_s = request.deadline_ms / 1000 if request.deadline_ms is not None else None
        job = client.infer(
            spec.name, request.texts, model=request.model, params=params, idempotency_key=idempotency_key,
            deadline_s=deadline_s, tenant=caller.tenant,
        )  # fmt: skip
        answers = job.wait(settings.api_max_wait_s)
        results, provenance = [], None
        for index, result in enumerate(answers):
            if isinstance(result, ItemError):
                results.append(result_model(index=index, error=ErrorBody(code=result.code, message=result.message)))
                continue
            fields = result.as_dict()
            provenance = fields.pop("model")
            results.append(result_model(index=index, **fields))
        return answer_model(results=results, model=ModelProvenance(**provenance) if provenance else None)

    answer.__annotations__["body"] = body_model  # the spec's own body schema (annotations here are strings)
    answer.__doc__ = (
        f"{spec.summary} A model that cannot serve it is refused with 422 ``wrong_task``; a bad text is answered in "
        "its place; a wait past LEPTON_API_MAX_WAIT_S is answered 504."
    )
    name = spec.command.replace("-", "_")
    router.add_api_route(
        spec.route, answer, methods=["POST"], response_model=answer_model, dependencies=SUBMIT,
        name=name, summary=spec.summary, tags=[spec.command],
    )  # fmt: skip
