"""A user's own TensorFlow training function, written the way Ray Train's docs show: Keras ``model.fit``
under MultiWorkerMirroredStrategy, reporting once per epoch from a Keras callback with the samples this
worker processed under ``num_samples``.

Swept by jobs/user-functions.yaml (``entrypoint: jobs.examples.tf_user:train_func``).
"""

import json
import os

import tensorflow as tf
from sklearn.datasets import load_digits

import ray.train


class ReportEveryEpoch(tf.keras.callbacks.Callback):
    def __init__(self, samples_per_epoch):
        super().__init__()
        self.samples_per_epoch = samples_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        ray.train.report({"epoch": epoch, "loss": float(logs["loss"]), "num_samples": self.samples_per_epoch})


def train_func(config):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    workers = len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"])
    per_worker_batch = config.get("batch_size", 32)
    global_batch = per_worker_batch * workers

    digits = load_digits()
    data = tf.data.Dataset.from_tensor_slices(((digits.data / 16.0).astype("float32"), digits.target))
    data = data.shuffle(len(digits.target), seed=0).batch(global_batch)

    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.Input((64,)),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(10),
        ])
        model.compile(
            optimizer=tf.keras.optimizers.SGD(config.get("lr", 0.05), momentum=0.9),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    # Keras shards the data by batch across workers: each worker sees about len / workers samples.
    samples = len(digits.target) // workers
    model.fit(data, epochs=config.get("epochs", 4), verbose=0, callbacks=[ReportEveryEpoch(samples)])
