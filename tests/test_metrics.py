import math

import numpy as np

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
