"""Extract the openAPIV3Schema of every served version of KubeRay's CRDs into the package.

    python scripts/vendor_kuberay_crds.py ../shared/crds/kuberay-v1.7.0

writes orchestrator/deploying/kube/schemas/kuberay-<version>.json.gz ({"ray.io/v1/RayCluster": schema, ...}) and copies
the CRDs' LICENSE beside it. `orchestrator k8s validate` reads that file, so validation works without the
CRD directory; `--crd-dir` points it at other CRDs instead.
"""

import gzip
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.deploying.kube.schemas import load_crd_dir  # noqa: E402

source = Path(sys.argv[1])
version = source.name.split("-", 1)[-1]
target = Path(__file__).resolve().parent.parent / "orchestrator" / "deploying" / "kube" / "schemas"
schemas = load_crd_dir(source)
(target / f"kuberay-{version}.json.gz").write_bytes(
    gzip.compress(json.dumps(schemas, sort_keys=True, separators=(",", ":")).encode(), mtime=0)
)
shutil.copy(source / "LICENSE", target / f"kuberay-{version}.LICENSE")
print(f"wrote {len(schemas)} schemas: {', '.join(sorted(schemas))}")
