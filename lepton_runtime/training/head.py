"""A linear classifier on frozen sentence embeddings (``lepton train --method head``): seconds instead of minutes.

The base is a sentence-transformers model (mean pooling, normalised: what all-MiniLM-L6-v2 was trained for);
its embeddings of the texts are computed once, then a multinomial logistic regression (L-BFGS) is fitted on them,
with the L2 penalty chosen by 3-fold cross-validation on the training rows (the validation split stays unseen).
Exported together with the encoder as one graph, it is a text classifier like any other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton_runtime.errors import InvalidInputError

# Texts per forward pass when embedding; the L2 penalties (on the mean loss) cross-validation chooses from.
EMBED_BATCH_TEXTS = 64
HEAD_L2_PENALTIES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
HEAD_FOLDS = 3
HEAD_MAX_ITERATIONS = 300


@dataclass
class LinearHead:
    """Weights [labels x dimensions] and biases of the fitted head, its labels, and how it did."""

    weight: np.ndarray
    bias: np.ndarray
    labels: list[str]
    validation_accuracy: float
    seconds: float
    l2_penalty: float


def embed_texts(encoder: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """Sentence embeddings of ``texts`` from ``encoder`` (input ids, mask, types -> pooled vectors), length-sorted."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.zeros((len(texts), 0), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), EMBED_BATCH_TEXTS):
            rows = order[start : start + EMBED_BATCH_TEXTS]
            batch = tokenizer(
                [texts[i] for i in rows], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            pooled = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).float().numpy()
            if vectors.shape[1] == 0:
                vectors = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            vectors[rows] = pooled
    return vectors


def fit_linear_head(
    train: np.ndarray, train_labels: list[str], validation: np.ndarray, validation_labels: list[str], seed: int
) -> LinearHead:
    """Multinomial logistic regression on the embeddings (L-BFGS, full batch), its L2 penalty chosen by
    cross-validation on the training rows; scored once on the validation rows."""
    started = time.perf_counter()
    labels = sorted(set(train_labels))
    if len(labels) < 2:
        raise InvalidInputError("a classifier needs at least two labels in the training data")
    index = {label: i for i, label in enumerate(labels)}
    targets = np.asarray([index[label] for label in train_labels])
    weight, bias, penalty = fit_head_weights(train, targets, len(labels), seed)
    guesses = (validation @ weight.T + bias).argmax(axis=1)
    accuracy = float(np.mean([labels[g] == truth for g, truth in zip(guesses, validation_labels, strict=True)]))
    return LinearHead(weight, bias, labels, accuracy, time.perf_counter() - started, penalty)


def fit_head_weights(
    features: np.ndarray, targets: np.ndarray, classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Weights [classes x dimensions], biases and the L2 penalty of a multinomial logistic regression of ``targets``
    (class ids) on ``features``, the penalty chosen by HEAD_FOLDS-fold cross-validation."""
    folds = np.random.default_rng(seed).permutation(len(features)) % HEAD_FOLDS
    scores = {}
    for penalty in HEAD_L2_PENALTIES:
        accuracies = []
        for fold in range(HEAD_FOLDS):
            weight, bias = _logistic_regression(features[folds != fold], targets[folds != fold], classes, penalty, seed)
            guesses = (features[folds == fold] @ weight.T + bias).argmax(axis=1)
            accuracies.append(float(np.mean(guesses == targets[folds == fold])))
        scores[penalty] = float(np.mean(accuracies))
    penalty = max(scores, key=lambda p: scores[p])
    weight, bias = _logistic_regression(features, targets, classes, penalty, seed)
    return weight, bias, penalty


def _logistic_regression(
    features: np.ndarray, targets: np.ndarray, classes: int, penalty: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    import torch

    torch.manual_seed(seed)
    inputs, wanted = torch.from_numpy(features), torch.from_numpy(targets)
    head = torch.nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=HEAD_MAX_ITERATIONS, line_search_fn="strong_wolfe"
    )

    def loss() -> Any:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(head(inputs), wanted) + penalty * head.weight.square().sum()
        value.backward()  # type: ignore[no-untyped-call]
        return value

    optimizer.step(loss)  # type: ignore[no-untyped-call]
    return head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy()
