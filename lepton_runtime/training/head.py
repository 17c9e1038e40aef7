"""A linear classifier on frozen sentence embeddings (``lepton train --method head``): seconds instead of minutes.

The base is a sentence-transformers model (mean pooling, normalised: what all-MiniLM-L6-v2 was trained for);
its embeddings of the texts are computed once, then a multinomial logistic regression (L-BFGS, L2 penalty) is
fitted on them. Exported together with the encoder as one graph, it is a text classifier like any other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton_runtime.errors import InvalidInputError

# Texts per forward pass when embedding, and the L2 penalty of the head (on the mean loss).
EMBED_BATCH_TEXTS = 64
HEAD_L2_PENALTY = 1e-4
HEAD_MAX_ITERATIONS = 300


@dataclass
class LinearHead:
    """Weights [labels x dimensions] and biases of the fitted head, its labels, and how it did."""

    weight: np.ndarray
    bias: np.ndarray
    labels: list[str]
    validation_accuracy: float
    seconds: float


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
    """Multinomial logistic regression on the embeddings, by L-BFGS on the full batch."""
    import torch

    started = time.perf_counter()
    labels = sorted(set(train_labels))
    if len(labels) < 2:
        raise InvalidInputError("a classifier needs at least two labels in the training data")
    index = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(seed)
    features = torch.from_numpy(train)
    targets = torch.tensor([index[label] for label in train_labels])
    head = torch.nn.Linear(train.shape[1], len(labels))
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=HEAD_MAX_ITERATIONS, line_search_fn="strong_wolfe"
    )

    def loss() -> Any:
        optimizer.zero_grad()
        value = (
            torch.nn.functional.cross_entropy(head(features), targets) + HEAD_L2_PENALTY * head.weight.square().sum()
        )
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        guesses = head(torch.from_numpy(validation)).argmax(dim=1).tolist()
    accuracy = float(np.mean([labels[g] == truth for g, truth in zip(guesses, validation_labels, strict=True)]))
    return LinearHead(
        weight=head.weight.detach().numpy().copy(), bias=head.bias.detach().numpy().copy(), labels=labels,
        validation_accuracy=accuracy, seconds=time.perf_counter() - started,
    )  # fmt: skip


def classifier_on_encoder(encoder: Any, head: LinearHead) -> Any:
    """One module: the pooled encoder, then the head; (input ids, mask, types) -> logits (the graph to export)."""
    import torch

    class PooledClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.classifier = torch.nn.Linear(head.weight.shape[1], head.weight.shape[0])
            with torch.no_grad():
                self.classifier.weight.copy_(torch.from_numpy(head.weight))
                self.classifier.bias.copy_(torch.from_numpy(head.bias))

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.classifier(self.encoder(input_ids, attention_mask, token_type_ids))

    return PooledClassifier().eval()
