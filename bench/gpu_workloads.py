"""ResNet-50 on synthetic images, in PyTorch and TensorFlow: plain training functions for bench/gpu.py.

Each runs as a Ray Train worker (through the orchestrator, as a user function) or as a plain process (bare),
times every step itself (the GPU synchronised), and reports the step times the way the built-in workloads do,
so the orchestrator measures both the same way. Weights are random (``weights=None``): nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import time


def _report(metrics: dict) -> None:
    try:
        import ray.train

        ray.train.get_context()
    except (ImportError, RuntimeError):
        print("BENCH " + json.dumps(metrics), flush=True)
        return
    ray.train.report(metrics)


def torch_resnet(config: dict) -> None:
    import torch
    import torchvision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch, size, steps, every = config["batch"], config["image_size"], config["steps"], config["report_every"]
    model = torchvision.models.resnet50(weights=None).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch,), device=device)
    times: list[float] = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.get("bf16", True)):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if step % every == 0:
            _report({"step": step, "loss": float(loss), "samples": batch * len(times), "step_times_s": times})
            times = []


def tf_resnet(config: dict) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    batch, size, steps, every = config["batch"], config["image_size"], config["steps"], config["report_every"]
    if config.get("bf16", True):
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    # classifier_activation=None: the loss below takes logits.
    model = tf.keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000,
                                           classifier_activation=None)
    optimizer = tf.keras.optimizers.SGD(0.1, momentum=0.9)
    images = tf.random.normal((batch, size, size, 3))
    labels = tf.random.uniform((batch,), 0, 1000, dtype=tf.int32)

    @tf.function(jit_compile=config.get("xla", False))
    def train_step():
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    times: list[float] = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        loss = float(train_step())  # waits for the step
        times.append(time.perf_counter() - start)
        if step % every == 0:
            _report({"step": step, "loss": loss, "samples": batch * len(times), "step_times_s": times})
            times = []


if __name__ == "__main__":
    import sys

    {"torch": torch_resnet, "tensorflow": tf_resnet}[sys.argv[1]](json.loads(sys.argv[2]))
