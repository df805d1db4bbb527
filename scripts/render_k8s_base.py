"""Write k8s/base from the manifest builders (orchestrator/deploying/kube/manifests.py): the default job at 2 CPU
workers, one file per concern. tests/unit/test_kube.py fails when k8s/base and the builders disagree.

    python scripts/render_k8s_base.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.deploying.kube.base import base_files  # noqa: E402

for name, text in base_files().items():
    (ROOT / "k8s" / "base" / name).write_text(text)
    print(f"wrote k8s/base/{name}")
