"""Pure: lines of code of the built-in workloads' training step, per framework, counted from the source.

"The training step" is the code that runs for every step: PyTorch's ``train_step`` (zero the gradients,
forward, loss, backward, optimiser step); TensorFlow's ``compute_gradients`` + ``replica_step`` +
``train_step`` (the tape, the distributed step under ``strategy.run``, the loss reduction). Both frameworks
share the step between the MLP and the CNN. A line counts when it holds code: blank lines, comment-only lines
and docstrings do not; a statement over three lines counts three. The source is read, never imported.
"""

from __future__ import annotations

import ast
import io
import tokenize
from importlib.util import find_spec
from pathlib import Path

STEP_FUNCTIONS = {
    "torch": ("orchestrator.workloads.torch_train", ("train_step",)),
    "tensorflow": ("orchestrator.workloads.tf_train", ("compute_gradients", "replica_step", "train_step")),
}
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
             tokenize.ENCODING, tokenize.ENDMARKER}


def code_lines(source: str) -> set[int]:
    """Line numbers of ``source`` that hold code (docstrings, comments and blank lines excluded)."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines - docstrings


def function_lines(source: str, names: tuple[str, ...]) -> dict[str, int]:
    """Code lines of each named function (nested ones too, decorators included), by name."""
    code = code_lines(source)
    counts = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names and node.name not in counts:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            counts[node.name] = len(code & set(range(start, node.end_lineno + 1)))
    missing = set(names) - set(counts)
    if missing:
        raise ValueError(f"no function named {', '.join(sorted(missing))} in the source")
    return counts


def training_step(framework: str) -> dict:
    """``{"framework", "source", "functions": {name: lines}, "lines"}`` for a built-in workload."""
    module, names = STEP_FUNCTIONS[framework]
    path = Path(find_spec(module).origin)
    counts = function_lines(path.read_text(encoding="utf-8"), names)
    return {"framework": framework, "source": f"{module.replace('.', '/')}.py", "functions": counts,
            "lines": sum(counts.values())}
