"""Read a trial's TensorBoard event files back with TensorBoard's own reader (the one ``tensorboard`` serves).

The sweep reads every trial's files right after writing them: the record keeps what TensorBoard found
(scalar tags and their points, whether a graph is there), so a report shows that the files load, and a file
TensorBoard cannot read is reported rather than discovered later.
"""

from __future__ import annotations

from pathlib import Path


def read(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars as ``{tag: [(step, value), ...]}``, from every event file in ``logdir`` (not below it)."""
    accumulator = _load(logdir)
    from tensorboard.util import tensor_util

    scalars = {}
    for tag in sorted(accumulator.PluginTagToContent("scalars")):
        events = accumulator.Tensors(tag)
        scalars[tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events]
    return scalars


def summary(logdir: str | Path) -> dict:
    """What a report says about one trial's event files: tags, points, graph size, files."""
    accumulator = _load(logdir)
    tags = sorted(accumulator.PluginTagToContent("scalars"))
    try:
        graph_nodes = len(accumulator.Graph().node)
    except ValueError:  # "There is no graph in this EventAccumulator"
        graph_nodes = 0
    return {
        "scalars": {tag: len(accumulator.Tensors(tag)) for tag in tags},
        "graph_nodes": graph_nodes,
        "event_files": sorted(p.name for p in Path(logdir).glob("events.out.tfevents.*")),
    }


def _load(logdir: str | Path):
    from orchestrator.workloads.reporting import tensorboard_without_tensorflow

    tensorboard_without_tensorflow()
    from tensorboard.backend.event_processing import plugin_event_accumulator

    # size_guidance 0: keep every event (the default samples scalars down to 10,000 and tensors to 10).
    accumulator = plugin_event_accumulator.EventAccumulator(
        str(logdir), size_guidance={plugin_event_accumulator.TENSORS: 0, plugin_event_accumulator.GRAPH: 1})
    accumulator.Reload()
    return accumulator
