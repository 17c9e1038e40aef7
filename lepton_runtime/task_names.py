"""The names of the tasks a model can do (a model's manifest records one), shared by engines, exports and producers,
and the check that a model does the task it is asked for (a producer checks at submit, an engine before it runs)."""

from __future__ import annotations

from lepton_runtime.errors import WrongTaskError

TEXT_CLASSIFICATION = "text-classification"
EMBEDDING = "embedding"
TOKEN_CLASSIFICATION = "token-classification"


def require_task(model: str, actual: str, wanted: str) -> None:
    """Raise WrongTaskError unless ``actual`` (the model's task, from its manifest) is ``wanted``; the error says
    what the model is and which client calls and HTTP routes serve it (from the task specs)."""
    if actual == wanted:
        return
    from lepton_runtime.tasks import SPECS  # the specs read these names: imported here, once asked

    def called(task: str) -> str:
        spec = SPECS.get(task)
        return spec.model_description if spec is not None else f"a {task} model"

    serving = [f"{spec.client_method}() / POST {spec.route}" for spec in SPECS.values() if spec.model_task == actual]
    raise WrongTaskError(
        f"model {model} is {called(actual)}, not {called(wanted)}: use {', '.join(serving) or 'its own task'} for it,"
        f" or a model exported with --task {wanted}"
    )
