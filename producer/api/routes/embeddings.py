"""``/v1/embeddings``: sentence embeddings in the shape of OpenAI's embeddings API, so its clients and the
frameworks built on them work unchanged (base URL + token); the answer adds the exact model version used.

The answer comes when done: up to LEPTON_INTERACTIVE_MAX_TEXTS inputs take the interactive lane, more the
bulk lane (429 while its queue is too deep); a wait past LEPTON_API_MAX_WAIT_S is answered 504.
"""

from __future__ import annotations

import base64
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.prediction import Embedding, ItemError
from producer.api.dependencies import SUBMIT, Client, CurrentCaller, Settings, few_texts_fit
from producer.api.errors import error_responses
from producer.api.schemas import EmbeddingOut, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, ModelProvenance

router = APIRouter(tags=["embeddings"], responses=error_responses(401, 403, 404, 413, 422, 429, 503, 504, 500))


@router.post("/v1/embeddings", response_model=EmbeddingsResponse, dependencies=SUBMIT)
def embeddings(
    body: EmbeddingsRequest,
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EmbeddingsResponse:
    """Embed one text or a list (``input``) with an embedding model (``model``: name, name@version or
    name@alias). ``encoding_format`` ``float`` (default) or ``base64`` (little-endian float32, what the
    openai client asks for). A model of another task is refused with 422 ``wrong_task``."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    few_texts_fit(texts, settings, client, field="input")
    job = client.embed(texts, model=body.model, idempotency_key=idempotency_key, tenant=caller.tenant)
    answers = job.wait(settings.api_max_wait_s)
    refused = [answer for answer in answers if isinstance(answer, ItemError)]
    if refused:
        raise InvalidInputError(
            f"{len(refused)} of {len(answers)} inputs were refused: "
            + "; ".join(answer.message.replace("texts[", "input[", 1) for answer in refused[:10]),
            issues=[InputIssue(f"input[{answer.index}]", answer.message) for answer in refused],
        )
    vectors = [answer for answer in answers if isinstance(answer, Embedding)]
    if body.dimensions is not None and vectors and body.dimensions != len(vectors[0].vector):
        raise InvalidInputError(
            f"dimensions: {body.dimensions} is not this model's width ({len(vectors[0].vector)}); it cannot be"
            " shortened. Leave dimensions out",
            issues=[InputIssue("dimensions", f"must be {len(vectors[0].vector)}")],
        )
    tokens = sum(vector.tokens for vector in vectors)
    return EmbeddingsResponse(
        data=[EmbeddingOut(index=i, embedding=_encoded(v.vector, body.encoding_format)) for i, v in enumerate(vectors)],
        model=body.model,
        usage=EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens),
        provenance=ModelProvenance(**vectors[0].model.as_dict()) if vectors else None,
    )


def _encoded(vector: object, encoding_format: str) -> list[float] | str:
    array = np.asarray(vector, dtype="<f4")
    if encoding_format == "base64":
        return base64.b64encode(array.tobytes()).decode("ascii")
    values: list[float] = array.tolist()
    return values
