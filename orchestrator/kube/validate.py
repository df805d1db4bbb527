"""Check Kubernetes manifests offline: schemas, then the security rules this project holds itself to.

    orchestrator k8s validate k8s/rendered.yaml [more.yaml ...] [--no-security] [--crd-dir DIR]

1. Schemas. KubeRay kinds (ray.io) against the CRDs' openAPIV3Schema, made strict: a field the schema
   does not know is an error (the API server would drop it silently, which is how typos go unnoticed).
   Built-in kinds against the official Kubernetes schemas of ``kubernetes-validate``, strict as well.
2. Security (``--no-security`` turns it off): every pod template meets the Pod Security Standard
   "restricted"; no token, password or secret is written as a literal env value; RBAC has no wildcards;
   the Ray dashboard and Jobs API are not exposed beyond the cluster; a TPU worker group's numOfHosts and
   google.com/tpu match its topology.

Every problem is one line: ``FILE#DOC Kind/name: field.path: what is wrong``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import yaml

from orchestrator.kube.schemas import crd_schemas
from orchestrator.spec import StrictLoader, yaml_problem
from orchestrator.tpu import TopologyError, tpu_slice

KUBERNETES_VERSION = "1.32"
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "API_KEY", "CREDENTIAL")
GKE_TPU_ACCELERATORS = {"tpu-v5-lite-podslice": "tpu-v5e", "tpu-v6e-slice": "tpu-v6e"}


@dataclass(frozen=True)
class Problem:
    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"


def load_documents(paths: list[str]) -> Iterator[tuple[str, object]]:
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            yield f"{path}", err
            continue
        except UnicodeDecodeError:
            yield f"{path}", ValueError("not UTF-8 text; pass Kubernetes manifests in YAML")
            continue
        try:
            for index, doc in enumerate(yaml.load_all(text, Loader=StrictLoader)):
                if doc is not None:
                    yield f"{path}#{index}", doc
        except yaml.YAMLError as err:
            where, problem = yaml_problem(err)
            yield f"{path}: {where}", ValueError(f"malformed YAML: {problem}")


def validate_paths(paths: list[str], security: bool = True, crd_dir: Optional[str] = None) -> list[Problem]:
    problems = []
    schemas, _ = crd_schemas(crd_dir)
    for where, doc in load_documents(paths):
        if isinstance(doc, Exception):
            problems.append(Problem(where, "", f"cannot read: {str(doc).splitlines()[0]}"))
            continue
        problems += validate_document(doc, where, schemas, security)
    return problems


def validate_document(doc, where: str, schemas: dict, security: bool = True) -> list[Problem]:
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        return [Problem(where, "", "not a Kubernetes object (needs apiVersion and kind)")]
    name = (doc.get("metadata") or {}).get("name", "?")
    label = f"{where} {doc['kind']}/{name}"
    problems = [Problem(label, f, m) for f, m in schema_problems(doc, schemas)]
    if security:
        problems += [Problem(label, f, m) for f, m in security_problems(doc)]
    return problems


# ---------------------------------------------------------------- schemas


def schema_problems(doc: dict, schemas: dict) -> list[tuple[str, str]]:
    group_version = doc["apiVersion"]
    if "/" in group_version and group_version.split("/")[0].endswith("ray.io"):
        key = f"{group_version}/{doc['kind']}"
        if key not in schemas:
            return [("apiVersion", f"no schema for {key}; known: {', '.join(sorted(schemas))}")]
        return _json_schema_problems(doc, _strict_crd_validator(key, id(schemas), schemas))
    return _builtin_problems(doc)


def _json_schema_problems(doc: dict, validator) -> list[tuple[str, str]]:
    out = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path).replace(".[", "[")
        out.append((path or "(root)", _short(error.message)))
    return out


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


_CRD_VALIDATORS: dict = {}


def _strict_crd_validator(key: str, schemas_id: int, schemas: dict):
    cache_key = (key, schemas_id)
    if cache_key not in _CRD_VALIDATORS:
        import jsonschema

        schema = to_json_schema(copy.deepcopy(schemas[key]))
        # metadata is `type: object` in CRDs; hold it to what the API server requires of every object.
        schema.setdefault("properties", {})["metadata"] = {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}},
        }
        _CRD_VALIDATORS[cache_key] = jsonschema.Draft7Validator(schema)
    return _CRD_VALIDATORS[cache_key]


def to_json_schema(node):
    """OpenAPI v3 (Kubernetes flavour) -> JSON Schema, strict about unknown fields."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: to_json_schema(v) for k, v in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in node if k.startswith("x-kubernetes-")]:
        node.pop(key)
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if node.get("type") == "object" and "properties" in node and not preserve and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


def _builtin_problems(doc: dict) -> list[tuple[str, str]]:
    import kubernetes_validate
    from kubernetes_validate.utils import InvalidSchemaError, SchemaNotFoundError, ValidationError

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "(root)"
        return [(path, _short(err.message))]
    except (SchemaNotFoundError, InvalidSchemaError) as err:
        return [("apiVersion", f"no Kubernetes {KUBERNETES_VERSION} schema for {doc['apiVersion']} {doc['kind']}: {err}")]
    return []


# ---------------------------------------------------------------- security


def pod_specs(doc: dict) -> Iterator[tuple[str, dict]]:
    """Every pod spec in an object, with its field path."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        yield "spec", spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield "spec.template.spec", (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        yield "spec.jobTemplate.spec.template.spec", template.get("spec") or {}
    elif kind == "RayCluster":
        yield from _ray_cluster_pods(spec, "spec")
    elif kind == "RayJob":
        if spec.get("rayClusterSpec"):
            yield from _ray_cluster_pods(spec["rayClusterSpec"], "spec.rayClusterSpec")
        if spec.get("submitterPodTemplate"):
            yield "spec.submitterPodTemplate.spec", spec["submitterPodTemplate"].get("spec") or {}
    elif kind == "RayService" and spec.get("rayClusterConfig"):
        yield from _ray_cluster_pods(spec["rayClusterConfig"], "spec.rayClusterConfig")


def _ray_cluster_pods(spec: dict, prefix: str):
    head = spec.get("headGroupSpec") or {}
    yield f"{prefix}.headGroupSpec.template.spec", (head.get("template") or {}).get("spec") or {}
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        yield f"{prefix}.workerGroupSpecs[{i}].template.spec", (group.get("template") or {}).get("spec") or {}


def restricted_problems(path: str, pod: dict, extra_containers: tuple = ()) -> Iterator[tuple[str, str]]:
    """The Pod Security Standard "restricted" (Kubernetes v1.32), for one pod spec."""
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            yield f"{path}.{host}", "must not be true (restricted)"
    for i, volume in enumerate(pod.get("volumes") or []):
        if "hostPath" in volume:
            yield f"{path}.volumes[{i}].hostPath", "hostPath volumes are not allowed (restricted)"
    pod_ctx = pod.get("securityContext") or {}
    if pod_ctx.get("runAsUser") == 0:
        yield f"{path}.securityContext.runAsUser", "must not be 0 (restricted)"
    containers = [("containers", c) for c in pod.get("containers") or []]
    containers += [("initContainers", c) for c in pod.get("initContainers") or []]
    containers += [("ephemeralContainers", c) for c in pod.get("ephemeralContainers") or []]
    containers += list(extra_containers)
    for index, (group, container) in enumerate(containers):
        where = f"{path}.{group}[{container.get('name', index)}]" if group != "autoscaler" else group
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            yield f"{where}.securityContext.privileged", "must not be true (restricted)"
        if ctx.get("allowPrivilegeEscalation") is not False:
            yield f"{where}.securityContext.allowPrivilegeEscalation", "must be false (restricted)"
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            yield f"{where}.securityContext.capabilities.drop", "must include ALL (restricted)"
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            yield f"{where}.securityContext.capabilities.add", f"{sorted(added)} not allowed; only NET_BIND_SERVICE (restricted)"
        if not (ctx.get("runAsNonRoot") is True or (pod_ctx.get("runAsNonRoot") is True and ctx.get("runAsNonRoot") is not False)):
            yield f"{where}.securityContext.runAsNonRoot", "must be true, on the pod or the container (restricted)"
        if ctx.get("runAsUser") == 0:
            yield f"{where}.securityContext.runAsUser", "must not be 0 (restricted)"
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield f"{where}.securityContext.seccompProfile.type", "must be RuntimeDefault or Localhost, on the pod or the container (restricted)"
        for p, port in enumerate(container.get("ports") or []):
            if port.get("hostPort"):
                yield f"{where}.ports[{p}].hostPort", "host ports are not allowed (restricted)"
        yield from _literal_secrets(where, container)


def _literal_secrets(where: str, container: dict) -> Iterator[tuple[str, str]]:
    for e, env in enumerate(container.get("env") or []):
        name = str(env.get("name", "")).upper()
        if "value" in env and env.get("value") not in (None, "") and any(w in name for w in SECRET_WORDS):
            yield f"{where}.env[{env.get('name')}]", "a literal secret; use valueFrom.secretKeyRef"


def security_problems(doc: dict) -> list[tuple[str, str]]:
    out = []
    autoscaler = ()
    spec = doc.get("spec") or {}
    if doc.get("kind") == "RayCluster" and spec.get("enableInTreeAutoscaling"):
        autoscaler = (("autoscaler", {"name": "autoscaler", **(spec.get("autoscalerOptions") or {})}),)
    for path, pod in pod_specs(doc):
        out += list(restricted_problems(path, pod, autoscaler if "headGroupSpec" in path else ()))
    if doc.get("kind") in ("Role", "ClusterRole"):
        for i, rule in enumerate(doc.get("rules") or []):
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                if "*" in (rule.get(key) or []):
                    out.append((f"rules[{i}].{key}", "wildcard '*' is not allowed; list what is needed"))
    if doc.get("kind") in ("RayCluster", "RayJob", "RayService"):
        out += _ray_cluster_rules(doc)
    if doc.get("kind") == "Service" and spec.get("type") in ("LoadBalancer", "NodePort"):
        ports = {p.get("port") for p in spec.get("ports") or []} | {p.get("targetPort") for p in spec.get("ports") or []}
        if ports & {8265, 6379, 10001, "dashboard", "gcs-server", "client"}:
            out.append(("spec.type", f"{spec['type']} exposes Ray's dashboard/Jobs API; use ClusterIP"))
    return out


def _ray_cluster_rules(doc: dict) -> list[tuple[str, str]]:
    spec = doc.get("spec") or {}
    kind = doc["kind"]
    clusters = {"RayCluster": ("spec", spec), "RayJob": ("spec.rayClusterSpec", spec.get("rayClusterSpec")),
                "RayService": ("spec.rayClusterConfig", spec.get("rayClusterConfig"))}
    prefix, cluster = clusters[kind]
    out = []
    if not cluster:
        return out
    service_type = (cluster.get("headGroupSpec") or {}).get("serviceType", "ClusterIP")
    if service_type != "ClusterIP":
        out.append((f"{prefix}.headGroupSpec.serviceType", f"{service_type} exposes the dashboard and Jobs API; use ClusterIP"))
    if ((cluster.get("authOptions") or {}).get("mode")) != "token":
        has_env_token = any(
            e.get("name") == "RAY_AUTH_MODE" and e.get("value") == "token"
            for _, pod in _ray_cluster_pods(cluster, prefix) for c in pod.get("containers") or [] for e in c.get("env") or []
        )
        if not has_env_token:
            out.append((f"{prefix}.authOptions.mode", "Ray token authentication is off; set authOptions.mode: token"))
    for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
        out += _tpu_group_problems(f"{prefix}.workerGroupSpecs[{i}]", group)
    return out


def _tpu_group_problems(where: str, group: dict) -> list[tuple[str, str]]:
    pod = (group.get("template") or {}).get("spec") or {}
    selector = pod.get("nodeSelector") or {}
    accelerator = selector.get("cloud.google.com/gke-tpu-accelerator")
    if not accelerator:
        return []
    topology = selector.get("cloud.google.com/gke-tpu-topology")
    name = GKE_TPU_ACCELERATORS.get(accelerator)
    if not name:
        return [(f"{where}.template.spec.nodeSelector", f"unknown GKE TPU accelerator {accelerator!r}; known: {', '.join(GKE_TPU_ACCELERATORS)}")]
    try:
        tpu = tpu_slice(name, str(topology))
    except TopologyError as err:
        return [(f"{where}.template.spec.nodeSelector", str(err))]
    out = []
    hosts = group.get("numOfHosts", 1)
    if hosts != tpu.hosts:
        out.append((f"{where}.numOfHosts", f"is {hosts}, but a {tpu.topology} {name} slice has {tpu.hosts} host(s)"))
    for container in pod.get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        chips = limits.get("google.com/tpu")
        if chips is not None and str(chips) != str(tpu.chips_per_host):
            out.append((f"{where}.containers[{container.get('name')}].resources.limits.google.com/tpu",
                        f"is {chips}, but each host of a {tpu.topology} {name} slice has {tpu.chips_per_host} chips"))
    return out
