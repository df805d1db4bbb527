"""KubeRay manifests: the pure builders, k8s/base in sync with them, and the validator catching mutations."""

import copy

import pytest
import yaml

from orchestrator.job import spec
from orchestrator.errors import UserError
from orchestrator.deploying.kube import base, manifests, validate
from orchestrator.deploying.kube.schemas import crd_schemas
from orchestrator.job.tpu import TopologyError, slices_for, tpu_slice
from tests.conftest import ROOT

SCHEMAS, _ = crd_schemas()
JOB = spec.load(ROOT / "jobs/digits-mlp.yaml")
GPU_JOB = spec.load(ROOT / "jobs/gpu-cnn.yaml")
TPU_JOB = spec.load(ROOT / "jobs/tpu-mlp.yaml")


def tpu_job(accelerator, topology, workers):
    """The TPU job on another slice, sweeping ``workers`` (the manifests must match the job's slice)."""
    data = TPU_JOB.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["arms"][0]["tpu"] = {"accelerator": accelerator, "topology": topology}
    data["sweep"]["workers"] = [workers]
    return spec.parse(data)


def problems(docs):
    return [str(p) for d in docs for p in validate.validate_document(d, "t", SCHEMAS)]


def by_kind(docs, kind):
    return next(d for d in docs if d["kind"] == kind)


@pytest.mark.parametrize("workers", range(2, 17))
@pytest.mark.parametrize("accelerator", ["cpu", "gpu"])
def test_render_cpu_and_gpu_at_every_scale_is_valid(workers, accelerator):
    job = GPU_JOB if accelerator == "gpu" else JOB
    scale = manifests.worker_scale(job, workers, accelerator)
    docs = manifests.build(job, scale, job_text="name: x\n")
    assert problems(docs) == []
    group = by_kind(docs, "RayCluster")["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == workers
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert ("nvidia.com/gpu" in limits) == (accelerator == "gpu")


@pytest.mark.parametrize(
    "accelerator, topology, workers, hosts, chips_per_host, replicas",
    [
        ("tpu-v5e", "1x1", 1, 1, 1, 1), ("tpu-v5e", "2x2", 3, 1, 4, 3), ("tpu-v5e", "2x4", 2, 1, 8, 2),
        ("tpu-v5e", "4x4", 4, 4, 4, 1), ("tpu-v5e", "4x4", 16, 4, 4, 4), ("tpu-v6e", "4x8", 8, 8, 4, 1),
        ("tpu-v6e", "2x2", 16, 1, 4, 16), ("tpu-v6e", "4x4", 12, 4, 4, 3), ("tpu-v6e", "8x8", 16, 16, 4, 1),
    ],
)
def test_render_tpu_topology_arithmetic(accelerator, topology, workers, hosts, chips_per_host, replicas):
    job = tpu_job(accelerator, topology, workers)
    scale = manifests.worker_scale(job, workers, accelerator, topology)
    docs = manifests.build(job, scale)
    assert problems(docs) == []
    group = by_kind(docs, "RayCluster")["spec"]["workerGroupSpecs"][0]
    assert group.get("numOfHosts", 1) == hosts
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["google.com/tpu"] == str(chips_per_host)
    assert group["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == topology
    if hosts > 1:
        assert group["replicas"] == replicas


def test_tpu_slices():
    v6e = tpu_slice("tpu-v6e", "4x4")
    assert (v6e.chips, v6e.hosts, v6e.chips_per_host, v6e.gke_accelerator) == (16, 4, 4, "tpu-v6e-slice")
    assert slices_for(8, v6e) == 2
    with pytest.raises(TopologyError, match="not a multiple of the 4 host"):
        slices_for(6, v6e)
    with pytest.raises(TopologyError, match="valid: 1x1"):
        tpu_slice("tpu-v5e", "3x3")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"workers": 1}, "sweeps up to 2 Ray workers"),
        ({"workers": 4, "accelerator": "gpu"}, "asks for no GPU per worker"),
        ({"workers": 8, "accelerator": "tpu-v6e"}, "needs --topology"),
        ({"workers": 10, "accelerator": "tpu-v6e", "topology": "4x4"}, "not a multiple of the 4 host(s)"),
        ({"workers": 8, "accelerator": "tpu-v6e", "topology": "5x5"}, "is not a tpu-v6e slice"),
        ({"workers": 8, "accelerator": "tpu-v6e", "topology": "2x2"}, "--topology 4x4"),
        ({"workers": 8, "accelerator": "tpu-v5e", "topology": "4x4"}, "render it with --accelerator tpu-v6e"),
        ({"workers": 8, "accelerator": "cpu"}, "runs its tpu arm on tpu-v6e 4x4 slices"),
        ({"workers": 4, "accelerator": "cpu", "topology": "2x2"}, "--topology is for TPU"),
        ({"workers": 4, "accelerator": "fpga"}, "known accelerators are cpu, gpu"),
        ({"workers": 4, "max_workers": 2}, "below --workers"),
    ],
)
def test_wrong_combinations_are_refused(kwargs, words):
    job = TPU_JOB if kwargs["workers"] >= 8 else JOB
    with pytest.raises(UserError) as caught:
        manifests.worker_scale(job, **kwargs)
    assert words in str(caught.value)


def test_tpu_nodes_for_a_job_without_a_tpu_arm_are_refused():
    with pytest.raises(UserError, match="has no arm with strategy tpu"):
        manifests.worker_scale(JOB, 4, "tpu-v6e", "4x4")


def test_gpu_job_needs_the_gpu_accelerator():
    with pytest.raises(UserError, match="render it with --accelerator gpu"):
        manifests.worker_scale(GPU_JOB, 2, "cpu")


def test_autoscaling_bounds_come_from_one_place():
    docs = manifests.build(JOB, manifests.worker_scale(JOB, 2, max_workers=8))
    cluster = by_kind(docs, "RayCluster")["spec"]
    group = cluster["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 8)
    assert cluster["enableInTreeAutoscaling"] is True
    assert problems(docs) == []


def test_k8s_base_is_what_the_builders_produce():
    for name, text in base.base_files(ROOT).items():
        assert (ROOT / "k8s/base" / name).read_text() == text, f"k8s/base/{name} is stale: run scripts/render_k8s_base.py"


def test_job_spec_travels_in_a_config_map():
    text = (ROOT / "jobs/digits-mlp.yaml").read_text()
    docs = manifests.build(JOB, manifests.worker_scale(JOB, 2), job_text=text)
    assert by_kind(docs, "ConfigMap")["data"]["job.yaml"] == text
    assert "/etc/orchestrator/jobs/job.yaml" in by_kind(docs, "RayJob")["spec"]["entrypoint"]


def test_secure_defaults():
    docs = manifests.build(JOB, manifests.worker_scale(JOB, 2))
    cluster = by_kind(docs, "RayCluster")["spec"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    text = manifests.to_yaml(docs)
    assert "RAY_AUTH_TOKEN" not in text and "*" not in text and "&id" not in text


# ---------------------------------------------------------------- mutations the validator must catch

RENDERED = manifests.build(JOB, manifests.worker_scale(JOB, 2))
TPU_RENDERED = manifests.build(TPU_JOB, manifests.worker_scale(TPU_JOB, 8, "tpu-v6e", "4x4"))


def head(doc):
    return doc["spec"]["headGroupSpec"]["template"]["spec"]


def worker(doc):
    return doc["spec"]["workerGroupSpecs"][0]


def mutate(kind, change, source=RENDERED):
    doc = copy.deepcopy(by_kind(source, kind))
    change(doc)
    return doc


MUTATIONS = [
    ("typo in a RayCluster field", "RayCluster", lambda d: d["spec"].update(workerGroupSpec=d["spec"].pop("workerGroupSpecs")), "'workerGroupSpec' was unexpected"),
    ("typo in a worker group field", "RayCluster", lambda d: worker(d).update(replica=2), "'replica' was unexpected"),
    ("typo in a container field", "RayCluster", lambda d: head(d)["containers"][0].update(imagePullPolcy="Always"), "'imagePullPolcy' was unexpected"),
    ("typo in a RayJob field", "RayJob", lambda d: d["spec"].update(entrypont="x"), "'entrypont' was unexpected"),
    ("typo in metadata", "RayJob", lambda d: d.update(metdata=d.pop("metadata")), "'metdata' was unexpected"),
    ("replicas as a string", "RayCluster", lambda d: worker(d).update(replicas="two"), "'two' is not of type 'integer'"),
    ("rayStartParams as a list", "RayCluster", lambda d: worker(d).update(rayStartParams=["a"]), "is not of type 'object'"),
    ("deadline as text", "RayJob", lambda d: d["spec"].update(activeDeadlineSeconds="1h"), "'1h' is not of type 'integer'"),
    ("container port as text", "RayCluster", lambda d: head(d)["containers"][0]["ports"][0].update(containerPort="gcs"), "containerPort"),
    ("privileged pod", "RayCluster", lambda d: worker(d)["template"]["spec"]["containers"][0]["securityContext"].update(privileged=True), "privileged: must not be true"),
    ("privilege escalation", "RayCluster", lambda d: head(d)["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation: must be false"),
    ("capabilities kept", "RayCluster", lambda d: head(d)["containers"][0]["securityContext"].update(capabilities={"add": ["SYS_ADMIN"]}), "must include ALL"),
    ("runs as root", "RayCluster", lambda d: (head(d)["securityContext"].update(runAsNonRoot=False), head(d)["containers"][0]["securityContext"].pop("runAsNonRoot")), "runAsNonRoot: must be true"),
    ("uid 0", "RayCluster", lambda d: head(d)["securityContext"].update(runAsUser=0), "runAsUser: must not be 0"),
    ("no seccomp", "RayCluster", lambda d: (head(d)["securityContext"].pop("seccompProfile"), head(d)["containers"][0]["securityContext"].pop("seccompProfile")), "seccompProfile.type"),
    ("host network", "RayCluster", lambda d: head(d).update(hostNetwork=True), "hostNetwork: must not be true"),
    ("hostPath volume", "RayCluster", lambda d: head(d)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath volumes are not allowed"),
    ("literal Ray token", "RayCluster", lambda d: head(d)["containers"][0]["env"].append({"name": "RAY_AUTH_TOKEN", "value": "s3cr3t"}), "a literal secret"),
    ("literal password", "RayCluster", lambda d: worker(d)["template"]["spec"]["containers"][0]["env"].append({"name": "DB_PASSWORD", "value": "x"}), "a literal secret"),
    ("token auth off", "RayCluster", lambda d: d["spec"].pop("authOptions"), "token authentication is off"),
    ("dashboard exposed", "RayCluster", lambda d: d["spec"]["headGroupSpec"].update(serviceType="LoadBalancer"), "LoadBalancer exposes the dashboard"),
    ("wildcard RBAC verbs", "Role", lambda d: d["rules"][0].update(verbs=["*"]), "wildcard '*'"),
    ("wildcard RBAC resources", "Role", lambda d: d["rules"][1].update(resources=["*"]), "wildcard '*'"),
    ("typo in a Role", "Role", lambda d: d["rules"][0].update(verb=["get"]), "verb"),
    ("typo in a NetworkPolicy", "NetworkPolicy", lambda d: d["spec"].update(podSelecter={}), "podSelecter"),
    ("PVC size as a number list", "PersistentVolumeClaim", lambda d: d["spec"].update(accessModes="ReadWriteMany"), "accessModes"),
]
TPU_MUTATIONS = [
    ("numOfHosts off the topology", lambda d: worker(d).update(numOfHosts=2), "numOfHosts: is 2, but a 4x4 tpu-v6e slice has 4 host(s)"),
    ("chips off the topology", lambda d: worker(d)["template"]["spec"]["containers"][0]["resources"]["limits"].update({"google.com/tpu": "8"}), "each host of a 4x4 tpu-v6e slice has 4 chips"),
    ("unknown topology", lambda d: worker(d)["template"]["spec"]["nodeSelector"].update({"cloud.google.com/gke-tpu-topology": "3x3"}), "is not a tpu-v6e slice"),
]


@pytest.mark.parametrize("what, kind, change, words", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_validator_catches(what, kind, change, words):
    found = problems([mutate(kind, change)])
    assert any(words in p for p in found), found


@pytest.mark.parametrize("what, change, words", TPU_MUTATIONS, ids=[m[0] for m in TPU_MUTATIONS])
def test_validator_catches_tpu_mismatches(what, change, words):
    found = problems([mutate("RayCluster", change, TPU_RENDERED)])
    assert any(words in p for p in found), found


def test_security_checks_can_be_turned_off():
    privileged = mutate("RayCluster", lambda d: head(d).update(hostNetwork=True))
    assert validate.validate_document(privileged, "t", SCHEMAS, security=False) == []


def test_every_problem_is_one_line_naming_the_object(tmp_path):
    bad = mutate("RayCluster", lambda d: worker(d).update(replica=2))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([RENDERED[0], bad]))
    (problem,) = validate.validate_paths([str(path)]).problems
    assert str(problem).startswith(f"{path}#1 RayCluster/orchestrator-digits-mlp: spec.workerGroupSpecs[0]: ")
    assert "\n" not in str(problem)


def test_unreadable_files_are_one_problem_each_with_where(tmp_path):
    broken, binary = tmp_path / "broken.yaml", tmp_path / "binary.yaml"
    broken.write_text(yaml.safe_dump(RENDERED[0]) + "---\nspec: [\n")
    binary.write_bytes(b"\xd0\xcf\x11\xe0 not text")
    twice = tmp_path / "twice.yaml"
    twice.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: '1'}\ndata: {b: '2'}\n")
    problems = [str(p) for p in validate.validate_paths([str(broken), str(binary), str(twice)]).problems]
    assert problems[0].startswith(f"{broken}: line ") and "malformed YAML" in problems[0]
    assert problems[1] == f"{binary}: cannot read: not UTF-8 text; pass Kubernetes manifests in YAML"
    assert problems[2].startswith(f"{twice}: line 5, column 1: ") and "'data' is given twice" in problems[2]
    assert len(problems) == 3  # the well-formed document before the error is checked and passes
