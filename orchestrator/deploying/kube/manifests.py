"""Pure builders: a job spec and a scale -> the KubeRay manifests that run its sweep on Kubernetes.

No cluster, no files: ``build`` returns plain dicts, ``to_yaml`` joins them into one multi-document file.
``k8s/base`` is this module's output for the default job (a test keeps them in sync), and the Helm chart
renders the same resources from values.

Worker replicas, minReplicas and maxReplicas come from one function, ``worker_scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import yaml

from orchestrator.job import plan as planning
from orchestrator.errors import UserError
from orchestrator.job.spec import JobSpec
from orchestrator.job.tpu import TopologyError, slices_for, tpu_slice

RAY_VERSION = "2.60.0"
DEFAULT_IMAGE = "ghcr.io/scaling-orchestrator/orchestrator:0.1.0"
ACCELERATORS = ("cpu", "gpu", "tpu-v5e", "tpu-v6e")
APP = "orchestrator"
RUN_AS = 1000  # the image's non-root user (see Dockerfile)

POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "fsGroup": RUN_AS,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class Scale:
    """How many Ray worker pods, and what each holds."""

    replicas: int
    """Worker group replicas: pods, or TPU slices of ``num_of_hosts`` pods each."""
    min_replicas: int
    max_replicas: int
    num_of_hosts: int
    cpus: float
    gpus: int
    tpu_chips: int
    memory_gib: int
    node_selector: dict


def worker_scale(
    spec: JobSpec,
    workers: int,
    accelerator: str = "cpu",
    topology: Optional[str] = None,
    max_workers: Optional[int] = None,
    memory_gib_per_cpu: int = 4,
) -> Scale:
    """The one place worker counts are decided. Refuses a scale that cannot run the job's sweep."""
    if accelerator not in ACCELERATORS:
        raise UserError(f"--accelerator {accelerator!r}: known accelerators are {', '.join(ACCELERATORS)}")
    if not 1 <= workers <= 4096:
        raise UserError(f"--workers {workers}: must be between 1 and 4096")
    max_workers = max_workers or workers
    if max_workers < workers:
        raise UserError(f"--max-workers {max_workers} is below --workers {workers}")
    plans = planning.build(spec)
    largest = max(p.ray_workers for p in plans)
    if largest > workers:
        raise UserError(
            f"job {spec.name!r} sweeps up to {largest} Ray workers (sweep.workers), more than --workers {workers}; "
            f"render at least {largest} workers or lower sweep.workers"
        )
    # A pod must hold the largest single Ray worker of any trial (mirrored puts N replicas in one).
    cpus = max(p.resources_per_worker.get("CPU", 0.0) for p in plans)
    gpus = max(p.resources_per_worker.get("GPU", 0.0) for p in plans)
    if accelerator == "gpu" and gpus <= 0:
        raise UserError("--accelerator gpu, but the job asks for no GPU per worker; set resources.gpus_per_worker")
    if accelerator != "gpu" and gpus > 0:
        raise UserError(f"the job asks for {gpus:g} GPU(s) per worker; render it with --accelerator gpu")
    if accelerator == "gpu" and gpus != int(gpus):
        raise UserError(f"resources.gpus_per_worker {gpus:g}: a pod takes whole GPUs")
    chips, hosts, selector, replicas, max_replicas = 0, 1, {}, workers, max_workers
    if accelerator.startswith("tpu"):
        if not topology:
            raise UserError(f"--accelerator {accelerator} needs --topology, e.g. 2x2 or 4x4")
        try:
            tpu = tpu_slice(accelerator, topology)
            replicas = slices_for(workers, tpu)
            max_replicas = slices_for(max_workers, tpu)
        except TopologyError as err:
            raise UserError(str(err)) from None
        chips, hosts = tpu.chips_per_host, tpu.hosts
        selector = {
            "cloud.google.com/gke-tpu-accelerator": tpu.gke_accelerator,
            "cloud.google.com/gke-tpu-topology": tpu.topology,
        }
    elif topology:
        raise UserError(f"--topology is for TPU accelerators, not {accelerator}")
    _check_tpu_matches(spec, accelerator, topology)
    return Scale(
        replicas=replicas,
        min_replicas=replicas,
        max_replicas=max_replicas,
        num_of_hosts=hosts,
        cpus=cpus,
        gpus=int(gpus),
        tpu_chips=chips,
        memory_gib=max(2, math.ceil(cpus * memory_gib_per_cpu)),
        node_selector=selector,
    )


def _check_tpu_matches(spec: JobSpec, accelerator: str, topology: Optional[str]) -> None:
    """A job's TPU arms run on the slice they name: rendering them on other nodes (or rendering TPU nodes for a
    job with no TPU arm) would leave pods that cannot run the sweep, or chips nothing uses."""
    slices = sorted({(arm.tpu.accelerator, arm.tpu.topology) for arm in spec.arms if arm.tpu is not None})
    if not slices:
        if accelerator.startswith("tpu"):
            raise UserError(f"--accelerator {accelerator}: job {spec.name!r} has no arm with strategy tpu, so its "
                            "workers would hold TPU chips they never use; render it with --accelerator cpu or gpu, "
                            "or add a tpu arm")
        return
    if len(slices) > 1:
        shown = ", ".join(f"{a} {t}" for a, t in slices)
        raise UserError(f"job {spec.name!r} has TPU arms on different slices ({shown}); one RayCluster has one "
                        "worker group shape: render a job file per slice")
    wanted_accelerator, wanted_topology = slices[0]
    if (accelerator, topology) != (wanted_accelerator, wanted_topology):
        given = f"--accelerator {accelerator}" + (f" --topology {topology}" if topology else "")
        raise UserError(f"{given}: job {spec.name!r} runs its tpu arm on {wanted_accelerator} {wanted_topology} "
                        f"slices; render it with --accelerator {wanted_accelerator} --topology {wanted_topology}")


def _labels(component: str) -> dict:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def _container(name: str, image: str, resources: dict, ports: Optional[list] = None) -> dict:
    container = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": dict(CONTAINER_SECURITY),
        "env": [{"name": "TF_USE_LEGACY_KERAS", "value": "1"}],
        "volumeMounts": [{"name": "results", "mountPath": "/results"}, {"name": "ray-tmp", "mountPath": "/tmp/ray"}],
    }
    if ports:
        container["ports"] = ports
    return container


# GPU node pools are tainted nvidia.com/gpu:NoSchedule (GKE, AKS, EKS's GPU AMIs): without this toleration
# the worker pods stay Pending.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _pod(container: dict, extra_volumes: tuple = (), node_selector: Optional[dict] = None,
         tolerations: tuple = ()) -> dict:
    spec = {
        "serviceAccountName": APP,
        "securityContext": dict(POD_SECURITY),
        "containers": [container],
        "volumes": [
            {"name": "results", "persistentVolumeClaim": {"claimName": f"{APP}-results"}},
            {"name": "ray-tmp", "emptyDir": {}},
            *extra_volumes,
        ],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    return {"spec": spec}


def ray_cluster(name: str, scale: Scale, image: str, job_config_map: Optional[str]) -> dict:
    head_ports = [
        {"name": "gcs-server", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "client", "containerPort": 10001},
    ]
    head = _container("ray-head", image, {"cpu": "1", "memory": "4Gi"}, head_ports)
    jobs_volume = ()
    if job_config_map:
        head["volumeMounts"].append({"name": "job-spec", "mountPath": "/etc/orchestrator/jobs", "readOnly": True})
        jobs_volume = ({"name": "job-spec", "configMap": {"name": job_config_map}},)
    worker_resources = {"cpu": f"{scale.cpus:g}", "memory": f"{scale.memory_gib}Gi"}
    if scale.gpus:
        worker_resources["nvidia.com/gpu"] = str(scale.gpus)
    if scale.tpu_chips:
        worker_resources["google.com/tpu"] = str(scale.tpu_chips)
    worker = _container("ray-worker", image, worker_resources)
    autoscaling = scale.max_replicas > scale.min_replicas
    group = {
        "groupName": "workers",
        "replicas": scale.replicas,
        "minReplicas": scale.min_replicas,
        "maxReplicas": scale.max_replicas,
        "rayStartParams": {},
        "template": _pod(worker, node_selector=scale.node_selector,
                         tolerations=(GPU_TOLERATION,) if scale.gpus else ()),
    }
    if scale.num_of_hosts > 1:
        group["numOfHosts"] = scale.num_of_hosts
    spec = {
        "rayVersion": RAY_VERSION,
        # Token authentication: KubeRay creates a Secret with a random token and sets RAY_AUTH_MODE and
        # RAY_AUTH_TOKEN on every Ray container from it. No token is ever written into a manifest.
        "authOptions": {"mode": "token"},
        "enableInTreeAutoscaling": autoscaling,
        "headGroupSpec": {
            "serviceType": "ClusterIP",
            # num-cpus 0: no training worker lands on the head, so worker pods alone set the scale.
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": _pod(head, jobs_volume),
        },
        "workerGroupSpecs": [group],
    }
    if autoscaling:
        spec["autoscalerOptions"] = {
            "securityContext": dict(CONTAINER_SECURITY),
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "labels": _labels("ray-cluster")},
        "spec": spec,
    }


def ray_job(name: str, cluster: str, entrypoint: str) -> dict:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "labels": _labels("sweep")},
        "spec": {
            "clusterSelector": {"ray.io/cluster": cluster},
            # HTTPMode: the operator submits through the Jobs API itself, so no submitter pod runs.
            "submissionMode": "HTTPMode",
            "entrypoint": entrypoint,
            "activeDeadlineSeconds": 24 * 3600,
        },
    }


def namespace(name: str) -> dict:
    """A namespace that admits only pods meeting the Pod Security Standard "restricted"."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "v1.32",
            },
        },
    }


def rbac() -> list[dict]:
    """What the in-tree Ray autoscaler in the head pod needs, and nothing else (no wildcards)."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": APP, "labels": _labels("rbac")}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": APP, "labels": _labels("rbac")},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": APP, "labels": _labels("rbac")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP},
            "subjects": [{"kind": "ServiceAccount", "name": APP}],
        },
    ]


def network_policies(cluster: str) -> list[dict]:
    """Ray pods take traffic only from their own cluster's pods, and the head's dashboard/Jobs port (8265)
    also from the KubeRay operator, which submits the RayJob and watches the cluster."""
    same_cluster = {"podSelector": {"matchLabels": {"ray.io/cluster": cluster}}}
    operator = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
    }
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{cluster}-ray", "labels": _labels("network-policy")},
            "spec": {
                "podSelector": {"matchLabels": {"ray.io/cluster": cluster}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [same_cluster]}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{cluster}-head-from-operator", "labels": _labels("network-policy")},
            "spec": {
                "podSelector": {"matchLabels": {"ray.io/cluster": cluster, "ray.io/node-type": "head"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [operator], "ports": [{"protocol": "TCP", "port": 8265}]}],
            },
        },
    ]


def results_claim(size_gib: int = 20) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{APP}-results", "labels": _labels("results")},
        # ReadWriteMany: Ray Train's storage_path must be shared by every node of a multi-node sweep.
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": f"{size_gib}Gi"}}},
    }


def build(
    spec: JobSpec,
    scale: Scale,
    image: str = DEFAULT_IMAGE,
    job_file: Optional[str] = None,
    job_text: Optional[str] = None,
    out_name: Optional[str] = None,
    train: Optional[tuple[str, int]] = None,
) -> list[dict]:
    """Every resource of one sweep, or with ``train`` (arm, workers) of one training run (`orchestrator
    train`). ``job_file`` is a path inside the image (the shipped jobs/), or, with ``job_text``, the spec
    travels in a ConfigMap mounted on the head. Results go to /results/``out_name`` (default: the job's name)."""
    cluster = f"{APP}-{spec.name}"[:63].rstrip("-.")
    docs = [*rbac(), results_claim()]
    config_map = None
    if job_text is not None:
        config_map = f"{APP}-job-{spec.name}"[:63].rstrip("-.")
        docs.append({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": config_map, "labels": _labels("job-spec")},
            "data": {"job.yaml": job_text},
        })
        job_path = "/etc/orchestrator/jobs/job.yaml"
    else:
        job_path = job_file or f"jobs/{spec.name}.yaml"
    docs.append(ray_cluster(cluster, scale, image, config_map))
    out = f"/results/{out_name or spec.name}"
    if train:
        arm, workers = train
        docs.append(ray_job(f"{cluster}-train"[:63], cluster,
                            f"orchestrator train {job_path} --arm {arm} --workers {workers} --out {out}"))
    else:
        docs.append(ray_job(f"{cluster}-sweep"[:63], cluster, f"orchestrator sweep {job_path} --out {out}"))
    docs += network_policies(cluster)
    return docs


class _PlainDumper(yaml.SafeDumper):
    """No &anchors/*aliases for repeated dicts: every manifest reads on its own."""

    def ignore_aliases(self, data) -> bool:
        return True


def to_yaml(docs: list[dict]) -> str:
    return "---\n".join(yaml.dump(d, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False) for d in docs)
