"""``/v1/entities``: the entities of a few texts (names, organisations, places...) as character spans of each text,
answered when done; a bad text is answered in its place, the others normally."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from lepton_runtime.prediction import Entities, ItemError
from producer.api.dependencies import SUBMIT, Client, CurrentCaller, Settings, few_texts_fit
from producer.api.errors import error_responses
from producer.api.schemas import EntitiesOut, EntitiesRequest, EntitiesResponse, EntityOut, ErrorBody, ModelProvenance

router = APIRouter(tags=["entities"], responses=error_responses(401, 403, 404, 413, 422, 429, 503, 504, 500))


@router.post("/v1/entities", response_model=EntitiesResponse, dependencies=SUBMIT)
def entities(
    body: EntitiesRequest,
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EntitiesResponse:
    """Entities of each text with an entity model (``model``: name, name@version or name@alias): per text a list
    of ``{start, end, label, score, text}`` with ``text == texts[i][start:end]``. A model of another task is
    refused with 422 ``wrong_task``; a wait past LEPTON_API_MAX_WAIT_S is answered 504."""
    few_texts_fit(body.texts, settings, client)
    job = client.entities(body.texts, model=body.model, idempotency_key=idempotency_key, tenant=caller.tenant)
    answers = job.wait(settings.api_max_wait_s)
    results = []
    for index, answer in enumerate(answers):
        if isinstance(answer, ItemError):
            results.append(EntitiesOut(index=index, error=ErrorBody(code=answer.code, message=answer.message)))
        else:
            found = [EntityOut(**entity.as_dict()) for entity in answer.entities]
            results.append(EntitiesOut(index=index, entities=found))
    provenance = next((a.model.as_dict() for a in answers if isinstance(a, Entities)), None)
    return EntitiesResponse(results=results, model=ModelProvenance(**provenance) if provenance else None)
