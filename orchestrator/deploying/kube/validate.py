"""Check Kubernetes manifests offline, agreeing with what an API server admits: schemas, then the security
rules this project holds itself to.

    orchestrator k8s validate FILE.yaml [more.yaml ...] [--no-security] [--crd-dir DIR]
        [--kubernetes-version 1.35] [--ignore-missing-schemas] [--skip KIND[,KIND...]]

1. Schemas. KubeRay kinds (ray.io: RayCluster, RayJob, RayService, RayCronJob) against the CRDs'
   openAPIV3Schema, as the API server applies a structural schema: null values of fields that are not
   ``nullable`` are dropped, then ``default``s are filled in, then the object is validated. Strict: a field
   the schema does not know is an error (the API server would drop it silently, which is how typos go
   unnoticed). ``metadata`` needs ``name`` or ``generateName``. Built-in kinds against the official
   Kubernetes schemas of ``kubernetes-validate`` for one Kubernetes release (``--kubernetes-version``,
   default ``DEFAULT_KUBERNETES_VERSION``; every message names it), strict as well, nulls dropped as the API
   server's decoder does.
2. Kinds without a schema (Gateway API routes, Volcano or KAI queues, ...) are an error by default; as in
   kubeconform, ``--ignore-missing-schemas`` reports them as skipped, and ``--skip`` skips named kinds
   (``HTTPRoute`` or ``gateway.networking.k8s.io/v1/HTTPRoute``). The summary counts valid, invalid and
   skipped documents.
3. Security (``--no-security`` turns it off): every pod template, the autoscaler's container included (in a
   RayCluster, a RayJob's rayClusterSpec and a RayService's rayClusterConfig), meets the Pod Security Standard
   "restricted", volume types included; no token, password or secret is written as a literal env value; RBAC
   has no wildcards; the Ray dashboard and Jobs API are not exposed beyond the cluster; a TPU worker group's
   numOfHosts and google.com/tpu match its topology.

Every problem is one line: ``FILE#DOC Kind/name: field.path: what is wrong``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import yaml

from orchestrator.errors import UserError
from orchestrator.deploying.kube.schemas import crd_schemas
from orchestrator.job.spec import StrictLoader, yaml_problem
from orchestrator.job.tpu import TopologyError, tpu_slice

# A release current managed clusters run (GKE, EKS and AKS all offer it in late 2026); any release
# kubernetes-validate ships can be chosen with --kubernetes-version.
DEFAULT_KUBERNETES_VERSION = "1.35"
# The Pod Security Standard "restricted" allows only these volume types.
RESTRICTED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret")
_VOLUME_FIELDS = ("name",)
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GENERATE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*)?$")
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "API_KEY", "CREDENTIAL")
GKE_TPU_ACCELERATORS = {"tpu-v5-lite-podslice": "tpu-v5e", "tpu-v6e-slice": "tpu-v6e"}


@dataclass(frozen=True)
class Problem:
    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Options:
    security: bool = True
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    ignore_missing_schemas: bool = False
    """Report a document whose kind has no schema as skipped instead of invalid (kubeconform's flag)."""
    skip_kinds: frozenset = frozenset()
    """Kinds (``HTTPRoute``) or group/version/kinds (``gateway.networking.k8s.io/v1/HTTPRoute``) not checked."""


@dataclass
class Summary:
    problems: list[Problem] = field(default_factory=list)
    valid: int = 0
    invalid: int = 0
    skipped: list[str] = field(default_factory=list)
    """``FILE#DOC Kind/name: why`` for every document not checked."""

    def line(self, version: str) -> str:
        return (f"{self.valid} valid, {self.invalid} invalid, {len(self.skipped)} skipped "
                f"(Kubernetes {version} schemas for built-in kinds)")


def kubernetes_versions() -> list[str]:
    """The Kubernetes releases (major.minor) whose schemas kubernetes-validate ships."""
    from kubernetes_validate.utils import all_versions, major_minor

    found = {major_minor(v) for v in all_versions()}
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def kubernetes_version(value: Optional[str]) -> str:
    """``--kubernetes-version`` as major.minor, refused with the known releases when there is no schema for it."""
    if value is None:
        return DEFAULT_KUBERNETES_VERSION
    match = re.fullmatch(r"v?(\d+)\.(\d+)(\.\d+)?", value.strip())
    known = kubernetes_versions()
    if not match or f"{match.group(1)}.{match.group(2)}" not in known:
        raise UserError(f"--kubernetes-version {value}: no Kubernetes schemas for it; known: {', '.join(known)}")
    return f"{match.group(1)}.{match.group(2)}"


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


def validate_paths(paths: list[str], security: bool = True, crd_dir: Optional[str] = None,
                   options: Optional[Options] = None) -> Summary:
    options = options or Options(security=security)
    summary = Summary()
    schemas, _ = crd_schemas(crd_dir)
    for where, doc in load_documents(paths):
        if isinstance(doc, Exception):
            summary.problems.append(Problem(where, "", f"cannot read: {str(doc).splitlines()[0]}"))
            summary.invalid += 1
            continue
        problems, skipped = check_document(doc, where, schemas, options)
        if skipped:
            summary.skipped.append(skipped)
        elif problems:
            summary.invalid += 1
            summary.problems += problems
        else:
            summary.valid += 1
    return summary


def validate_document(doc, where: str, schemas: dict, security: bool = True,
                      options: Optional[Options] = None) -> list[Problem]:
    problems, _ = check_document(doc, where, schemas, options or Options(security=security))
    return problems


class _MissingSchema(Exception):
    pass


def _label(doc: dict, where: str) -> str:
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = metadata.get("name") or (f"{metadata['generateName']}*" if metadata.get("generateName") else "?")
    return f"{where} {doc['kind']}/{name}"


def check_document(doc, where: str, schemas: dict, options: Options) -> tuple[list[Problem], Optional[str]]:
    """The document's problems, or why it was skipped."""
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        return [Problem(where, "", "not a Kubernetes object (needs apiVersion and kind)")], None
    label = _label(doc, where)
    full_kind = f"{doc['apiVersion']}/{doc['kind']}"
    if doc["kind"] in options.skip_kinds or full_kind in options.skip_kinds:
        return [], f"{label}: skipped (--skip)"
    try:
        problems = [Problem(label, f, m) for f, m in schema_problems(doc, schemas, options.kubernetes_version)]
    except _MissingSchema as missing:
        if options.ignore_missing_schemas:
            return [], f"{label}: skipped, {missing}"
        return [Problem(label, "apiVersion", f"{missing}; pass --ignore-missing-schemas to report it as skipped, "
                                             f"or --skip {doc['kind']}")], None
    if options.security:
        problems += [Problem(label, f, m) for f, m in security_problems(admitted_view(doc, schemas))]
    return problems, None


# ---------------------------------------------------------------- schemas


def _crd_key(doc: dict, schemas: dict) -> Optional[str]:
    group_version = str(doc["apiVersion"])
    if "/" in group_version and group_version.split("/")[0].endswith("ray.io"):
        key = f"{group_version}/{doc['kind']}"
        if key not in schemas:
            raise _MissingSchema(f"no schema for {key}; known: {', '.join(sorted(schemas))}")
        return key
    return None


def admitted_view(doc: dict, schemas: dict) -> dict:
    """The object as the API server would store it: for a KubeRay kind, nulls of non-nullable fields dropped
    and the schema's defaults filled in; for a built-in kind, nulls dropped (its decoder reads null as unset)."""
    try:
        key = _crd_key(doc, schemas)
    except _MissingSchema:
        return doc
    if key is None:
        return _drop_nulls(doc)
    return apply_structural(doc, schemas[key])


def schema_problems(doc: dict, schemas: dict, version: str = DEFAULT_KUBERNETES_VERSION) -> list[tuple[str, str]]:
    key = _crd_key(doc, schemas)
    if key is None:
        return _builtin_problems(_drop_nulls(doc), version)
    admitted = apply_structural(doc, schemas[key])
    return _metadata_problems(admitted) + _json_schema_problems(admitted, _strict_crd_validator(key, schemas))


def _metadata_problems(doc: dict) -> list[tuple[str, str]]:
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return [("metadata", "must be an object with name (or generateName, for kubectl create)")]
    name, generate = metadata.get("name"), metadata.get("generateName")
    if name is None and generate is None:
        return [("metadata", "needs name, or generateName (for kubectl create)")]
    out = []
    if name is not None and not (isinstance(name, str) and _NAME.match(name) and len(name) <= 253):
        out.append(("metadata.name", f"{name!r} is not a DNS subdomain name (lower case letters, digits, '-' and '.')"))
    if generate is not None and not (isinstance(generate, str) and _GENERATE_NAME.match(generate) and len(generate) <= 248):
        out.append(("metadata.generateName", f"{generate!r} is not a name prefix (lower case letters, digits, '-' and '.')"))
    return out


def apply_structural(value, schema: dict):
    """What the API server does with a structural schema before validating: drop null values of fields that
    are not ``nullable``, then fill in ``default``s of missing fields (in objects that are present)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict) and (schema.get("type") == "object" or "properties" in schema):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        out = {}
        for key, item in value.items():
            sub = properties.get(key, extra)
            if item is None and sub is not None and not sub.get("nullable"):
                continue  # pruned, as a non-nullable null is
            out[key] = apply_structural(item, sub) if sub is not None else item
        for key, sub in properties.items():
            if key not in out and isinstance(sub, dict) and "default" in sub:
                out[key] = apply_structural(copy.deepcopy(sub["default"]), sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_structural(item, schema["items"]) for item in value]
    return value


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _json_schema_problems(doc: dict, validator) -> list[tuple[str, str]]:
    out = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path).replace(".[", "[")
        out.append((path or "(root)", _short(error.message)))
    return out


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


_CRD_VALIDATORS: dict = {}


def _strict_crd_validator(key: str, schemas: dict):
    """A validator per CRD schema, cached by the schema object itself: the cache keeps the schema alive, so
    an entry is used only while ``schemas[key]`` is that very object (an id is never recycled under it)."""
    schema_object = schemas[key]
    cached = _CRD_VALIDATORS.get(key)
    if cached is None or cached[0] is not schema_object:
        import jsonschema

        schema = to_json_schema(copy.deepcopy(schema_object))
        # metadata is `type: object` in CRDs; its name and generateName are checked by _metadata_problems.
        schema.setdefault("properties", {})["metadata"] = {"type": "object"}
        cached = (schema_object, jsonschema.Draft7Validator(schema))
        _CRD_VALIDATORS[key] = cached
    return cached[1]


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


def _builtin_problems(doc: dict, version: str) -> list[tuple[str, str]]:
    import kubernetes_validate
    from kubernetes_validate.utils import InvalidSchemaError, SchemaNotFoundError, ValidationError

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "(root)"
        return [(path, f"{_short(err.message)} (Kubernetes {version})")]
    except (SchemaNotFoundError, InvalidSchemaError):
        raise _MissingSchema(f"no Kubernetes {version} schema for {doc['apiVersion']} {doc['kind']}") from None
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
    for prefix, cluster in ray_cluster_specs(doc):
        yield from _ray_cluster_pods(cluster, prefix)
    job, job_path = {"RayJob": (spec, "spec"), "RayCronJob": (spec.get("jobTemplate"), "spec.jobTemplate")}.get(
        kind, (None, None))
    if isinstance(job, dict) and isinstance(job.get("submitterPodTemplate"), dict):
        yield f"{job_path}.submitterPodTemplate.spec", job["submitterPodTemplate"].get("spec") or {}


def ray_cluster_specs(doc: dict) -> list[tuple[str, dict]]:
    """Every Ray cluster spec in a KubeRay object, with its field path: a RayCluster's spec, a RayJob's
    rayClusterSpec, a RayService's rayClusterConfig, a RayCronJob's jobTemplate.rayClusterSpec."""
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        return []
    kind = doc.get("kind")
    found = {
        "RayCluster": ("spec", spec),
        "RayJob": ("spec.rayClusterSpec", spec.get("rayClusterSpec")),
        "RayService": ("spec.rayClusterConfig", spec.get("rayClusterConfig")),
        "RayCronJob": ("spec.jobTemplate.rayClusterSpec", (spec.get("jobTemplate") or {}).get("rayClusterSpec")),
    }.get(kind)
    return [found] if found and isinstance(found[1], dict) else []


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
        if not isinstance(volume, dict):
            continue
        for kind in sorted(set(volume) - set(RESTRICTED_VOLUMES) - set(_VOLUME_FIELDS)):
            yield (f"{path}.volumes[{volume.get('name', i)}].{kind}",
                   f"{kind} volumes are not allowed (restricted allows {', '.join(RESTRICTED_VOLUMES)})")
    pod_ctx = pod.get("securityContext") or {}
    if pod_ctx.get("runAsUser") == 0:
        yield f"{path}.securityContext.runAsUser", "must not be 0 (restricted)"
    containers = [("containers", c) for c in pod.get("containers") or []]
    containers += [("initContainers", c) for c in pod.get("initContainers") or []]
    containers += [("ephemeralContainers", c) for c in pod.get("ephemeralContainers") or []]
    containers += list(extra_containers)
    for index, (group, container) in enumerate(containers):
        where = group if group.endswith("autoscalerOptions") else f"{path}.{group}[{container.get('name', index)}]"
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


def _autoscalers(doc: dict) -> dict[str, tuple]:
    """The in-tree autoscaler container of each Ray cluster spec in the object (KubeRay runs it beside the
    head), keyed by the head's pod path."""
    out = {}
    for prefix, cluster in ray_cluster_specs(doc):
        if cluster.get("enableInTreeAutoscaling"):
            container = {"name": "autoscaler", **(cluster.get("autoscalerOptions") or {})}
            out[f"{prefix}.headGroupSpec.template.spec"] = ((f"{prefix}.autoscalerOptions", container),)
    return out


def security_problems(doc: dict) -> list[tuple[str, str]]:
    out = []
    spec = doc.get("spec") or {}
    autoscalers = _autoscalers(doc)
    for path, pod in pod_specs(doc):
        out += list(restricted_problems(path, pod, autoscalers.get(path, ())))
    if doc.get("kind") in ("Role", "ClusterRole"):
        for i, rule in enumerate(doc.get("rules") or []):
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                if "*" in (rule.get(key) or []):
                    out.append((f"rules[{i}].{key}", "wildcard '*' is not allowed; list what is needed"))
    for prefix, cluster in ray_cluster_specs(doc):
        out += _ray_cluster_rules(prefix, cluster)
    if doc.get("kind") == "Service" and spec.get("type") in ("LoadBalancer", "NodePort"):
        ports = {p.get("port") for p in spec.get("ports") or []} | {p.get("targetPort") for p in spec.get("ports") or []}
        if ports & {8265, 6379, 10001, "dashboard", "gcs-server", "client"}:
            out.append(("spec.type", f"{spec['type']} exposes Ray's dashboard/Jobs API; use ClusterIP"))
    return out


def _ray_cluster_rules(prefix: str, cluster: dict) -> list[tuple[str, str]]:
    out = []
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
