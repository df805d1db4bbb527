"""Where validation finds schemas.

KubeRay kinds: the CRDs' openAPIV3Schema, shipped in this package (kuberay-*.json.gz, Apache-2.0, from
KubeRay's released CRDs; regenerate with scripts/vendor_kuberay_crds.py), or read from a directory of CRD
YAML files (``--crd-dir`` / ``ORCHESTRATOR_CRD_DIR``). Built-in kinds: the official Kubernetes schemas shipped
by the ``kubernetes-validate`` package.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Optional

import yaml

from orchestrator.errors import UserError

HERE = Path(__file__).resolve().parent


def load_crd_dir(directory: Path) -> dict[str, dict]:
    """{"group/version/Kind": openAPIV3Schema} for every served version of every CRD in ``directory``."""
    schemas = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if version.get("served", True) and "schema" in version:
                    schemas[f"{group}/{version['name']}/{kind}"] = version["schema"]["openAPIV3Schema"]
    return schemas


def crd_schemas(crd_dir: Optional[str] = None) -> tuple[dict[str, dict], str]:
    """The CRD schemas and where they came from."""
    directory = crd_dir or os.environ.get("ORCHESTRATOR_CRD_DIR")
    if directory:
        if not Path(directory).is_dir():
            raise UserError(f"--crd-dir {directory}: no such directory of CRD YAML files")
        schemas = load_crd_dir(Path(directory))
        if not schemas:
            raise UserError(f"--crd-dir {directory}: holds no CustomResourceDefinition with a schema")
        return schemas, directory
    shipped = sorted(HERE.glob("kuberay-*.json.gz"))
    if not shipped:
        raise UserError(
            "no KubeRay CRD schemas: the package's orchestrator/deploying/kube/schemas/kuberay-*.json.gz is missing; "
            "reinstall, or pass --crd-dir DIR with KubeRay's CRD YAML files"
        )
    return json.loads(gzip.decompress(shipped[-1].read_bytes())), shipped[-1].name
