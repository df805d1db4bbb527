"""k8s/ rendered by the real `kubectl kustomize`, the Helm chart by Helm's own engine (helm-python-sdk),
and `orchestrator k8s` end to end; every output validated."""

import shutil
import subprocess
import sys

import pytest
import yaml

from orchestrator.deploying.kube import validate
from orchestrator.deploying.kube.schemas import crd_schemas
from tests.conftest import ROOT

SCHEMAS, _ = crd_schemas()
CHART = ROOT / "helm/orchestrator"


def problems(text: str, where: str) -> list[str]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs, f"{where} rendered nothing"
    return [str(p) for d in docs for p in validate.validate_document(d, where, SCHEMAS)]


@pytest.mark.parametrize("overlay", ["cpu", "gpu", "tpu"])
def test_overlay_renders_with_kubectl_kustomize_and_validates(overlay):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the kustomize overlays (apt-get install kubectl)"
    done = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s/overlays" / overlay)], capture_output=True, text=True, check=True)
    assert problems(done.stdout, overlay) == []
    docs = {d["kind"]: d for d in yaml.safe_load_all(done.stdout)}
    assert docs["RayCluster"]["metadata"]["namespace"] == "orchestrator"
    group = docs["RayCluster"]["spec"]["workerGroupSpecs"][0]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    if overlay == "gpu":
        assert limits["nvidia.com/gpu"] == "1" and "gpu-cnn" in docs["RayJob"]["spec"]["entrypoint"]
    if overlay == "tpu":
        assert group["numOfHosts"] == 4 and limits["google.com/tpu"] == "4"


def test_overlays_patch_the_base_instead_of_copying_it():
    for overlay in ("cpu", "gpu", "tpu"):
        kustomization = yaml.safe_load((ROOT / "k8s/overlays" / overlay / "kustomization.yaml").read_text())
        assert kustomization["resources"] == ["../../base"]
        for path in (ROOT / "k8s/overlays" / overlay).glob("*.yaml"):
            for doc in yaml.safe_load_all(path.read_text()):
                assert not (isinstance(doc, dict) and doc.get("kind") in ("RayCluster", "RayJob")), f"{path} copies a resource"


helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk is a dev dependency (make test installs it)")

CHART_VALUES = [
    {},
    {"accelerator": {"type": "gpu", "gpusPerWorker": 2}, "job": {"enabled": True, "spec": "jobs/gpu-cnn.yaml", "out": "/results/gpu"}},
    {"accelerator": {"type": "tpu", "tpu": {"version": "v5e", "topology": "2x4"}}},
    {"accelerator": {"type": "tpu", "tpu": {"version": "v6e", "topology": "4x4"}},
     "workerGroups": {"slices": {"replicas": 2, "resources": {"cpu": "8", "memory": "32Gi"}}}},
    {"workerGroups": {"small": {"replicas": 2, "minReplicas": 1, "maxReplicas": 8, "resources": {"cpu": "1", "memory": "4Gi"}},
                      "big": {"replicas": 1, "resources": {"cpu": "4", "memory": "16Gi"}}}},
    {"job": {"enabled": False}, "networkPolicy": {"enabled": False}},
]


@pytest.mark.parametrize("values", CHART_VALUES, ids=["default", "gpu", "tpu-v5e-2x4", "tpu-v6e-4x4", "autoscaling-two-groups", "cluster-only"])
def test_chart_renders_with_helm_and_validates(values):
    chart = helm_python.Chart.load(str(CHART))
    chart.validate_schema(values)
    rendered = chart.render(values, name="demo", namespace="sweeps")
    text = "\n---\n".join(t for path, t in sorted(rendered.items()) if path.endswith(".yaml"))
    assert problems(text, "chart") == []
    kinds = [d["kind"] for d in yaml.safe_load_all(text) if d]
    assert "RayCluster" in kinds and ("RayJob" in kinds) == values.get("job", {}).get("enabled", True)
    assert "kubectl" in rendered["orchestrator/templates/NOTES.txt"]


def test_chart_tpu_hosts_follow_the_topology():
    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(CHART_VALUES[3], name="demo")
    group = yaml.safe_load(rendered["orchestrator/templates/raycluster.yaml"])["spec"]["workerGroupSpecs"][0]
    assert group["numOfHosts"] == 4 and group["replicas"] == 2


# The chart and `orchestrator k8s render` (orchestrator/deploying/kube/manifests.py) are two writings of one
# RayCluster and RayJob: for the same scale they must agree on everything but the names a Helm release derives.
SAME_SCALE = [
    ("jobs/digits-mlp.yaml", {"workers": 2}, {"type": "cpu"}),
    ("jobs/digits-mlp.yaml", {"workers": 2, "max_workers": 6}, {"type": "cpu"}),
    ("jobs/gpu-cnn.yaml", {"workers": 2, "accelerator": "gpu"}, {"type": "gpu"}),
    ("jobs/tpu-mlp.yaml", {"workers": 8, "accelerator": "tpu-v6e", "topology": "4x4"},
     {"type": "tpu", "tpu": {"version": "v6e", "topology": "4x4"}}),
]


@pytest.mark.parametrize("job, scale_args, accelerator", SAME_SCALE, ids=["cpu", "cpu-autoscaling", "gpu", "tpu-v6e-4x4"])
def test_chart_and_render_write_the_same_cluster_and_job(job, scale_args, accelerator):
    from orchestrator.job import spec
    from orchestrator.deploying.kube import manifests

    job_spec = spec.load(str(ROOT / job))
    scale = manifests.worker_scale(job_spec, **scale_args)
    docs = {d["kind"]: d for d in manifests.build(job_spec, scale, job_file=job)}
    if scale.gpus:
        accelerator = {**accelerator, "gpusPerWorker": scale.gpus}
    values = {"accelerator": accelerator, "workerGroups": {"workers": {
        "replicas": scale.replicas, "minReplicas": scale.min_replicas, "maxReplicas": scale.max_replicas,
        "resources": {"cpu": f"{scale.cpus:g}", "memory": f"{scale.memory_gib}Gi"}}},
        "job": {"spec": job, "out": f"/results/{job_spec.name}"}}
    chart = helm_python.Chart.load(str(CHART))
    chart.validate_schema(values)
    rendered = chart.render(values, name="demo", namespace="sweeps")
    cluster, ray_job = (yaml.safe_load(rendered[f"orchestrator/templates/{name}.yaml"].replace("demo-orchestrator", manifests.APP))
                        for name in ("raycluster", "rayjob"))
    assert cluster["spec"] == docs["RayCluster"]["spec"]
    # The RayJob runs the same sweep on its cluster (named after the release there, after the job here).
    assert ray_job["spec"] == {**docs["RayJob"]["spec"], "clusterSelector": {"ray.io/cluster": manifests.APP}}


def test_chart_lint_is_clean():
    result = helm_python.lint(str(CHART), strict=True)
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] > 1] == []


@pytest.mark.parametrize(
    "values, words",
    [
        ({"imagee": {}}, "imagee"),
        ({"workerGroups": {"workers": {"replicas": -1, "resources": {"cpu": "1", "memory": "1Gi"}}}}, "minimum"),
        ({"workerGroups": {"workers": {"replicas": "two", "resources": {"cpu": "1", "memory": "1Gi"}}}}, "replicas"),
        ({"workerGroups": {"workers": {"replicas": 2, "replica": 3, "resources": {"cpu": "1", "memory": "1Gi"}}}}, "replica"),
        ({"workerGroups": {"Bad_Name": {"replicas": 1, "resources": {"cpu": "1", "memory": "1Gi"}}}}, "Bad_Name"),
        ({"workerGroups": {"workers": {"replicas": 100000, "resources": {"cpu": "1", "memory": "1Gi"}}}}, "maximum"),
        ({"accelerator": {"type": "fpga"}}, "type"),
        ({"accelerator": {"type": "tpu", "tpu": {"version": "v6e", "topology": "3x3"}}}, "topology"),
        ({"head": {"resources": {"cpu": "lots", "memory": "1Gi"}}}, "cpu"),
        ({"job": {"enabled": True, "out": "/results/../etc"}}, "out"),
        ({"job": {"enabled": "yes"}}, "enabled"),
    ],
)
def test_chart_schema_rejects_bad_values(values, words):
    chart = helm_python.Chart.load(str(CHART))
    with pytest.raises(helm_python.HelmValuesError) as caught:
        chart.validate_schema(values)
    assert words in str(caught.value)


def test_chart_refuses_replicas_outside_the_autoscaler_bounds():
    chart = helm_python.Chart.load(str(CHART))
    with pytest.raises(helm_python.HelmError, match=r"need minReplicas \(2\) <= replicas \(3\) <= maxReplicas \(2\)"):
        chart.render({"workerGroups": {"workers": {"replicas": 3, "maxReplicas": 2, "resources": {"cpu": "1", "memory": "1Gi"}}}}, name="x")


def orchestrator(*argv):
    return subprocess.run([sys.executable, "-m", "orchestrator", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_render_then_validate(tmp_path):
    out = tmp_path / "tpu.yaml"
    done = orchestrator("k8s", "render", "jobs/tpu-mlp.yaml", "--workers", "8", "--accelerator", "tpu-v6e", "--topology", "4x4", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 x 4 worker pod(s)" in done.stderr
    checked = orchestrator("k8s", "validate", str(out))
    assert checked.returncode == 0, checked.stdout


def test_cli_validate_exits_1_with_a_line_per_problem(tmp_path):
    text = orchestrator("k8s", "render", "jobs/digits-mlp.yaml", "--workers", "2").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("minReplicas: 2", "minReplica: 2").replace("runAsNonRoot: true", "runAsNonRoot: false"))
    done = orchestrator("k8s", "validate", str(bad))
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert any("'minReplica' was unexpected" in line for line in lines)
    assert any("runAsNonRoot: must be true" in line for line in lines)
    schema_only = orchestrator("k8s", "validate", "--no-security", str(bad))
    assert schema_only.returncode == 1 and "runAsNonRoot" not in schema_only.stdout


def test_cli_refuses_a_bad_scale_with_exit_2():
    done = orchestrator("k8s", "render", "jobs/digits-mlp.yaml", "--workers", "6", "--accelerator", "tpu-v6e", "--topology", "4x4")
    assert done.returncode == 2 and "not a multiple of the 4 host(s)" in done.stderr and "Traceback" not in done.stderr


def test_cli_validate_without_crds_says_so(tmp_path):
    done = orchestrator("k8s", "validate", "--crd-dir", str(tmp_path / "none"), str(ROOT / "k8s/base/rayjob.yaml"))
    assert done.returncode == 2 and "no such directory of CRD YAML files" in done.stderr


def test_cli_validate_against_a_crd_dir(tmp_path):
    crds = ROOT.parent / "shared/crds/kuberay-v1.7.0"
    if not crds.is_dir():
        pytest.skip("../shared/crds is not beside this checkout; the shipped schemas are tested above")
    done = orchestrator("k8s", "validate", "--crd-dir", str(crds), str(ROOT / "k8s/base/raycluster.yaml"))
    assert done.returncode == 0, done.stdout
