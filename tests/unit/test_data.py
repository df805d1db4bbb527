"""The built-in data: the digits read without importing scikit-learn are scikit-learn's digits."""

import subprocess
import sys

import numpy as np

from orchestrator.workloads import data


def test_the_digits_are_scikit_learns_and_the_split_is_fixed():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x_train, y_train, x_test, y_test = data.load("digits")
    assert len(x_test) == data.digits_test_size() and len(x_train) == data.train_size("digits", 0)
    order = np.random.default_rng(1234).permutation(len(digits.target))
    images, labels = (digits.images / 16.0).astype(np.float32)[order], digits.target[order]
    np.testing.assert_array_equal(np.concatenate([x_test, x_train]), images)
    np.testing.assert_array_equal(np.concatenate([y_test, y_train]), labels)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64


def test_a_worker_loads_the_digits_without_importing_scikit_learn():
    code = ("import sys; from orchestrator.workloads import data; data.load('digits'); "
            "print('sklearn' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_a_caller_cannot_change_the_digits_the_next_repeat_gets():
    first = data.load("digits")[0]
    first[:] = 0
    assert data.load("digits")[0].max() == 1.0
