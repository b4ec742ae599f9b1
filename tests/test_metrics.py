import math

import numpy as np
import pytest

from domainlm.metrics import perplexity, token_accuracy


def test_token_accuracy_compares_each_guess_with_the_next_label():
    labels = np.array([[5, 6, 7, 8], [5, 6, -100, -100]])
    # predictions[:, t] guesses labels[:, t + 1]
    preds = np.array([[6, 7, 0, 9], [6, 1, 1, 1]])
    # row 0: 6=6, 7=7, 0!=8 ; row 1: 6=6, then ignored -> 3 right of 4
    assert token_accuracy(preds, labels) == 0.75


def test_token_accuracy_with_nothing_to_score_is_nan():
    assert math.isnan(token_accuracy(np.array([[1, 2]]), np.array([[-100, -100]])))


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert math.isclose(perplexity(math.log(27.27)), 27.27)
    assert perplexity(1e6) == float("inf")


def test_per_token_losses_of_the_next_label_and_their_token_weighted_mean():
    import torch

    from domainlm.metrics import argmax_logits, token_loss

    # vocabulary of 2: logits (0, 0) give each token log-probability log(1/2); (log 3, 0) gives token 0 3/4
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [0.0, 0.0]], [[math.log(3), 0.0], [0.0, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0, 1], [0, 1, -100]])
    ids, losses = argmax_logits(logits, labels)
    assert ids.tolist() == [[0, 0, 0], [0, 0, 0]]
    # row 0: position 0 predicts label 0 at 1/2, position 1 predicts label 1 at 1/4; row 1: label 1 at 1/4, then ignored
    expected = [[math.log(2), math.log(4), 0.0], [math.log(4), 0.0, 0.0]]
    assert np.allclose(losses.numpy(), expected, atol=1e-6)
    assert token_loss(losses.numpy(), labels.numpy()) == pytest.approx((math.log(2) + 2 * math.log(4)) / 3)
    assert math.isnan(token_loss(np.zeros((1, 2)), np.array([[5, -100]])))
