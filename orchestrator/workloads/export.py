"""Export a trained built-in model for deployment, then load each export in its own runtime and measure it.

PyTorch:     torch.export -> ONNX (``torch.onnx.export(..., dynamo=True)``), run by onnxruntime.
TensorFlow:  TF Lite (LiteRT) flatbuffers, float and dynamic-range quantised (int8 weights, float
             activations), run by ai-edge-litert's interpreter.

Each export is measured against the trained model it came from, on the same test split and this CPU with the
trial's thread count: file size, test accuracy (and the share of test samples whose predicted class is the
trained model's), single-sample latency (median and 90th percentile of ``runs`` calls after 10 untimed ones).
The rows go to ``deploy.json`` beside the files; the orchestrator copies both into OUT/export/<trial>/.
"""

from __future__ import annotations

import json
import statistics
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

import numpy as np

WARMUP_RUNS = 10
SUMMARY = "deploy.json"


def latency(run_one: Callable[[np.ndarray], object], sample: np.ndarray, runs: int) -> dict:
    for _ in range(WARMUP_RUNS):
        run_one(sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_one(sample)
        times.append(time.perf_counter() - start)
    times.sort()
    return {"latency_ms_p50": 1000 * statistics.median(times), "latency_ms_p90": 1000 * times[int(0.9 * (len(times) - 1))]}


def _row(fmt: str, runtime: str, file: Optional[Path], logits: Optional[np.ndarray], trained: Optional[np.ndarray],
         labels: np.ndarray, timing: dict, export_s: Optional[float]) -> dict:
    row = {"format": fmt, "runtime": runtime, "file": file.name if file else None,
           "bytes": file.stat().st_size if file else None, "export_s": export_s, **timing,
           "accuracy": None, "trained_accuracy": None, "accuracy_delta": None, "agreement": None}
    if logits is not None and len(labels):
        predicted = logits.argmax(1)
        row["accuracy"] = float((predicted == labels).mean())
        if trained is not None and file is not None:  # an export, against the model it came from
            reference = trained.argmax(1)
            row["trained_accuracy"] = float((reference == labels).mean())
            row["accuracy_delta"] = row["accuracy"] - row["trained_accuracy"]
            row["agreement"] = float((predicted == reference).mean())
    return row


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _write(directory: Path, framework: str, rows: list[dict], test_samples: int, started: float,
           dataset: str) -> list[dict]:
    # seconds: the whole export and its measurements, imports included (what it adds to the trial's time)
    summary = {"framework": framework, "dataset": dataset, "test_samples": test_samples, "models": rows,
               "seconds": time.perf_counter() - started}
    (directory / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return rows


def torch_models(net, images: np.ndarray, labels: np.ndarray, sample: np.ndarray, directory: Path,
                 runs: int, threads: int, dataset: str) -> list[dict]:
    """``net``: the trained nn.Module (not DDP-wrapped, not compiled); ``images``: ``dataset``'s test split
    (empty for a dataset without one: latency only)."""
    started = time.perf_counter()
    import onnxruntime
    import torch

    net = net.to("cpu").eval()
    with torch.no_grad():
        trained = net(torch.from_numpy(images)).numpy() if len(images) else None
        eager = latency(lambda x: net(torch.from_numpy(x)), sample, runs)
    rows = [_row("pytorch", f"torch {torch.__version__} eager", None, trained, None, labels, eager, None)]

    path = directory / "model.onnx"
    example = torch.from_numpy(np.repeat(sample, 2, axis=0))  # batch 2: a batch of 1 would be specialised
    start = time.perf_counter()
    torch.onnx.export(net, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                      input_names=["images"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    export_s = time.perf_counter() - start
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    run = lambda x: session.run(None, {"images": x})[0]  # noqa: E731
    logits = run(images) if len(images) else None
    rows.append(_row("onnx", f"onnxruntime {onnxruntime.__version__}", path, logits, trained, labels,
                     latency(run, sample, runs), export_s))
    return _write(directory, "torch", rows, len(images), started, dataset)


def tf_models(model, images: np.ndarray, labels: np.ndarray, sample: np.ndarray, directory: Path,
              runs: int, threads: int, dataset: str) -> list[dict]:
    """``model``: a plain Keras model holding the trained weights (built outside any strategy scope);
    ``images``: ``dataset``'s test split (empty for a dataset without one: latency only)."""
    started = time.perf_counter()
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    predict = tf.function(lambda x: model(x, training=False))
    trained = predict(images).numpy() if len(images) else None
    rows = [_row("keras", f"tensorflow {tf.__version__} tf.function", None, trained, None, labels,
                 latency(lambda x: predict(x).numpy(), sample, runs), None)]

    for fmt, name, optimizations in (("tflite float32", "model_float32.tflite", []),
                                     ("tflite dynamic-range int8", "model_dynamic_range.tflite", [tf.lite.Optimize.DEFAULT])):
        start = time.perf_counter()
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = optimizations
        path = directory / name
        path.write_bytes(converter.convert())
        export_s = time.perf_counter() - start
        logits = run_tflite(path, images, threads) if len(images) else None
        single = Interpreter(model_path=str(path), num_threads=threads)
        single.allocate_tensors()
        source, target = single.get_input_details()[0]["index"], single.get_output_details()[0]["index"]

        def run_one(x, single=single, source=source, target=target):
            single.set_tensor(source, x)
            single.invoke()
            return single.get_tensor(target)

        rows.append(_row(fmt, f"ai-edge-litert {_version('ai-edge-litert')}", path, logits, trained, labels,
                         latency(run_one, sample, runs), export_s))
    return _write(directory, "tensorflow", rows, len(images), started, dataset)


def run_tflite(path: Path, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """Logits of a .tflite model for a batch of images, through LiteRT's interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    source = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(source, list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(source, images.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()
