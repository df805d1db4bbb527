"""Data and initial weights shared by both frameworks, in plain NumPy.

Both frameworks train on the same arrays, sharded the same way, from the same initial weights: the only
thing that differs between a PyTorch and a TensorFlow trial is the framework.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

NUM_CLASSES = 10
DIGITS_SAMPLES = 1797  # sklearn.datasets.load_digits, bundled with scikit-learn (no download)
TEST_FRACTION = 0.2


def digits_test_size() -> int:
    return int(round(DIGITS_SAMPLES * TEST_FRACTION))


def train_size(dataset: str, num_samples: int) -> int:
    return DIGITS_SAMPLES - digits_test_size() if dataset == "digits" else num_samples


def load(dataset: str, num_samples: int = 4096, image_size: int = 8, seed: int = 0):
    """Returns ``(x_train, y_train, x_test, y_test)``; images are float32 ``(n, size, size)`` in [0, 1].

    digits: the real 8x8 handwritten digits, a fixed shuffled split (test arrays for accuracy).
    synthetic: random images and labels for throughput only (test arrays are empty).
    """
    if dataset == "digits":
        pixels, target = _digits()
        images = (pixels / 16.0).astype(np.float32)
        labels = target.astype(np.int64)
        order = np.random.default_rng(1234).permutation(len(labels))
        images, labels = images[order], labels[order]
        n_test = digits_test_size()
        return images[n_test:], labels[n_test:], images[:n_test], labels[:n_test]
    rng = np.random.default_rng(seed + 99)
    images = rng.random((num_samples, image_size, image_size), dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, num_samples, dtype=np.int64)
    empty = np.zeros((0, image_size, image_size), np.float32)
    return images, labels, empty, np.zeros((0,), np.int64)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``sklearn.datasets.load_digits`` gives them (8x8 pixels in 0..16, labels), read from the
    CSV scikit-learn ships, without importing scikit-learn: its import costs ~1.4 s of every fresh worker
    here, more than the default job's training at 1 worker. Kept per process, for the repeats of a reused
    worker group; callers get copies."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(next(iter(spec.submodule_search_locations)), "datasets", "data", "digits.csv.gz") if spec else None
    if path is None or not path.is_file():  # a scikit-learn that keeps it elsewhere
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def shard(n: int, rank: int, world: int) -> np.ndarray:
    """Indices of the training set this worker owns: every ``world``-th sample, like DistributedSampler."""
    return np.arange(rank, n, world)


def batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int, start: int = 0):
    """Endless batches of exactly ``batch`` samples, reshuffled every pass (the last partial batch dropped),
    from the ``start``-th batch on: a run restored after step k passes ``start=k`` and carries on where the
    stream was, the same batches in the same order as a run that never stopped."""
    if len(x) < batch:
        raise ValueError(f"a worker's shard has {len(x)} samples, fewer than its batch of {batch}")
    rng = np.random.default_rng(seed)
    per_pass = len(x) // batch
    passes, offset = divmod(max(0, int(start)), per_pass)
    for _ in range(passes):  # the permutations of the passes already trained, drawn and dropped
        rng.permutation(len(x))
    while True:
        order = rng.permutation(len(x))
        for begin in range(offset * batch, len(x) - batch + 1, batch):
            index = order[begin : begin + batch]
            yield x[index], y[index]
        offset = 0


# Initial weights, generated once in NumPy and loaded into either framework.
# Layouts are PyTorch's: dense (in, out); conv (out, in, kh, kw). tf_layout() converts.


def _glorot(rng: np.random.Generator, fan_in: int, fan_out: int, shape) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def mlp_weights(in_features: int, hidden: list[int], seed: int) -> list[np.ndarray]:
    """[W0, b0, W1, b1, ...]: dense layers in -> hidden... -> 10."""
    rng = np.random.default_rng(seed)
    widths = [in_features, *hidden, NUM_CLASSES]
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        params += [_glorot(rng, fan_in, fan_out, (fan_in, fan_out)), np.zeros(fan_out, np.float32)]
    return params


def cnn_weights(image_size: int, channels: list[int], seed: int) -> list[np.ndarray]:
    """3x3 'same' convs with ReLU, a 2x2 max-pool, then a dense layer to 10 classes."""
    rng = np.random.default_rng(seed)
    params, c_in = [], 1
    for c_out in channels:
        shape = (c_out, c_in, 3, 3)
        params += [_glorot(rng, c_in * 9, c_out * 9, shape), np.zeros(c_out, np.float32)]
        c_in = c_out
    flat = c_in * (image_size // 2) ** 2
    params += [_glorot(rng, flat, NUM_CLASSES, (flat, NUM_CLASSES)), np.zeros(NUM_CLASSES, np.float32)]
    return params


def tf_layout(model: str, params: list[np.ndarray], image_size: int) -> list[np.ndarray]:
    """The same weights in Keras' layouts: conv kernels (kh, kw, in, out); the dense layer after the
    flatten reordered from PyTorch's (c, h, w) to TensorFlow's (h, w, c)."""
    if model == "mlp":
        return list(params)
    out = []
    convs = params[:-2]
    for kernel, bias in zip(convs[::2], convs[1::2]):
        out += [kernel.transpose(2, 3, 1, 0).copy(), bias]
    dense, bias = params[-2:]
    c, hw = convs[-2].shape[0], image_size // 2
    dense = dense.reshape(c, hw, hw, -1).transpose(1, 2, 0, 3).reshape(c * hw * hw, -1)
    return out + [dense.copy(), bias]
