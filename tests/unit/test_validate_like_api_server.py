"""`orchestrator k8s validate` agrees with the API server (issue 18): structural defaults before `required`, null
pruning, generateName, every KubeRay CRD, a chosen Kubernetes release, kinds without a schema, and the security
pass on every Ray cluster spec. Each case is its own small manifest with the verdict an API server gives it."""

import copy

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.deploying.kube import validate
from orchestrator.deploying.kube.schemas import crd_schemas

SCHEMAS, _ = crd_schemas()
SAFE_POD = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "ray", "image": "rayproject/ray:2.60.0",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def cluster_spec(**worker):
    """A RayCluster spec whose one worker group gives only ``worker``'s fields beside groupName and template."""
    return {
        "headGroupSpec": {"rayStartParams": {}, "template": {"spec": copy.deepcopy(SAFE_POD)}},
        "workerGroupSpecs": [{"groupName": "workers", "rayStartParams": {},
                              "template": {"spec": copy.deepcopy(SAFE_POD)}, **worker}],
        "authOptions": {"mode": "token"},
    }


def ray_cluster(**worker):
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c"}, "spec": cluster_spec(**worker)}


def schema(doc, version=validate.DEFAULT_KUBERNETES_VERSION):
    options = validate.Options(security=False, kubernetes_version=version)
    return [str(p) for p in validate.validate_document(doc, "t", SCHEMAS, options=options)]


def security(doc):
    return [str(p) for p in validate.validate_document(doc, "t", SCHEMAS)]


def test_a_worker_group_without_min_and_max_replicas_is_defaulted_not_refused():
    assert schema(ray_cluster(replicas=1)) == []


def test_a_required_field_without_a_default_is_still_required():
    doc = ray_cluster(replicas=1)
    del doc["spec"]["workerGroupSpecs"][0]["groupName"]
    assert any("'groupName' is a required property" in p for p in schema(doc))


def test_a_key_with_no_value_is_pruned_as_the_api_server_does():
    doc = ray_cluster(replicas=1)
    doc["spec"]["workerGroupSpecs"][0]["template"]["metadata"] = None
    assert schema(doc) == []
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}, "annotations": None},
                                        "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    assert schema(deployment) == []


def test_a_null_required_object_is_missing_after_pruning():
    doc = ray_cluster(replicas=1)
    doc["spec"]["headGroupSpec"] = None
    assert any("'headGroupSpec' is a required property" in p for p in schema(doc))


def test_generate_name_instead_of_name():
    doc = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"generateName": "rayjob-"},
           "spec": {"entrypoint": "python x.py", "rayClusterSpec": cluster_spec(replicas=1)}}
    assert schema(doc) == []
    doc["metadata"] = {"labels": {"a": "b"}}
    assert any("metadata: needs name, or generateName" in p for p in schema(doc))
    doc["metadata"] = {"name": "Not_A_Name"}
    assert any("metadata.name: 'Not_A_Name' is not a DNS subdomain name" in p for p in schema(doc))


def test_a_ray_cron_job_has_its_schema():
    doc = {"apiVersion": "ray.io/v1", "kind": "RayCronJob", "metadata": {"name": "nightly"},
           "spec": {"schedule": "0 3 * * *", "jobTemplate": {"entrypoint": "python x.py",
                                                            "rayClusterSpec": cluster_spec(replicas=1)}}}
    assert schema(doc) == []
    doc["spec"]["schedul"] = doc["spec"].pop("schedule")
    found = schema(doc)
    assert any("'schedul' was unexpected" in p for p in found) and any("'schedule' is a required" in p for p in found)


STATEFUL_SET = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "redis"},
                "spec": {"selector": {"matchLabels": {"app": "redis"}},
                         "template": {"metadata": {"labels": {"app": "redis"}},
                                      "spec": {"containers": [{"name": "redis", "image": "redis:7"}]}}}}


def test_a_stateful_set_without_service_name_at_both_versions():
    assert schema(STATEFUL_SET, "1.35") == []  # optional since Kubernetes 1.33
    (problem,) = schema(STATEFUL_SET, "1.32")
    assert "'serviceName' is a required property (Kubernetes 1.32)" in problem


def test_kubernetes_version_is_checked_and_said():
    assert validate.kubernetes_version("v1.33.2") == "1.33"
    assert validate.kubernetes_version(None) == validate.DEFAULT_KUBERNETES_VERSION
    assert "1.32" in validate.kubernetes_versions() and validate.DEFAULT_KUBERNETES_VERSION in validate.kubernetes_versions()
    with pytest.raises(UserError, match=r"--kubernetes-version 1.9: no Kubernetes schemas for it; known: .*1\.32, 1\.33"):
        validate.kubernetes_version("1.9")


ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
         "spec": {"parentRefs": [{"name": "gw"}]}}
QUEUE = {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue", "metadata": {"name": "q"},
         "spec": {"weight": 1}}


@pytest.fixture
def mixed(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump_all([ray_cluster(replicas=1), ROUTE, QUEUE]))
    return path


def test_a_kind_without_a_schema_fails_by_default_and_says_how_to_skip(mixed, capsys):
    assert main(["k8s", "validate", str(mixed)]) == 1
    out, err = capsys.readouterr()
    assert "HTTPRoute/r: apiVersion: no Kubernetes 1.35 schema for gateway.networking.k8s.io/v1 HTTPRoute" in out
    assert "--ignore-missing-schemas" in out and "--skip HTTPRoute" in out
    assert "1 valid, 2 invalid, 0 skipped" in err


def test_ignore_missing_schemas_and_skip_report_them_as_skipped(mixed, capsys):
    assert main(["k8s", "validate", "--ignore-missing-schemas", str(mixed)]) == 0
    assert "1 valid, 0 invalid, 2 skipped" in capsys.readouterr().err
    assert main(["k8s", "validate", "--skip", "HTTPRoute", "--skip", "scheduling.volcano.sh/v1beta1/Queue", str(mixed)]) == 0
    assert "1 valid, 0 invalid, 2 skipped" in capsys.readouterr().err
    assert main(["k8s", "validate", "--skip", "HTTPRoute", str(mixed)]) == 1  # the queue still has no schema
    out, err = capsys.readouterr()
    assert "Queue/q" in out and "1 valid, 1 invalid, 1 skipped" in err


def test_an_unknown_kubernetes_version_exits_2(mixed, capsys):
    assert main(["k8s", "validate", "--kubernetes-version", "2.0", str(mixed)]) == 2
    assert "no Kubernetes schemas for it; known: " in capsys.readouterr().err


def privileged_autoscaler(spec):
    spec["enableInTreeAutoscaling"] = True
    spec["autoscalerOptions"] = {"securityContext": {"privileged": True}}
    return spec


@pytest.mark.parametrize("doc, path", [
    ({"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "j"},
      "spec": {"entrypoint": "x", "rayClusterSpec": privileged_autoscaler(cluster_spec(replicas=1))}},
     "spec.rayClusterSpec.autoscalerOptions.securityContext.privileged"),
    ({"apiVersion": "ray.io/v1", "kind": "RayService", "metadata": {"name": "s"},
      "spec": {"rayClusterConfig": privileged_autoscaler(cluster_spec(replicas=1))}},
     "spec.rayClusterConfig.autoscalerOptions.securityContext.privileged"),
    ({"apiVersion": "ray.io/v1", "kind": "RayCronJob", "metadata": {"name": "n"},
      "spec": {"schedule": "* * * * *", "jobTemplate": {"entrypoint": "x", "rayClusterSpec": privileged_autoscaler(
          cluster_spec(replicas=1))}}},
     "spec.jobTemplate.rayClusterSpec.autoscalerOptions.securityContext.privileged"),
])
def test_the_autoscaler_is_checked_in_every_ray_cluster_spec(doc, path):
    assert schema(doc) == []
    assert any(f"{path}: must not be true (restricted)" in p for p in security(doc)), security(doc)


def test_a_ray_job_cluster_without_token_auth_is_flagged():
    spec = cluster_spec(replicas=1)
    del spec["authOptions"]
    doc = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "j"},
           "spec": {"entrypoint": "x", "rayClusterSpec": spec}}
    assert any("spec.rayClusterSpec.authOptions.mode: Ray token authentication is off" in p for p in security(doc))


@pytest.mark.parametrize("volume, allowed", [
    ({"name": "host", "hostPath": {"path": "/var/run"}}, False),
    ({"name": "share", "nfs": {"server": "nfs", "path": "/x"}}, False),
    ({"name": "config", "configMap": {"name": "c"}}, True),
    ({"name": "scratch", "emptyDir": {}}, True),
    ({"name": "data", "persistentVolumeClaim": {"claimName": "d"}}, True),
])
def test_restricted_allows_only_its_volume_types(volume, allowed):
    doc = ray_cluster(replicas=1)
    doc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["volumes"] = [volume]
    assert schema(doc) == []
    flagged = [p for p in security(doc) if "volumes" in p]
    assert (not flagged) == allowed, flagged
    if not allowed:
        kind = next(k for k in volume if k != "name")
        assert f"volumes[{volume['name']}].{kind}: {kind} volumes are not allowed (restricted" in flagged[0]


def test_the_validator_cache_follows_the_schema_object_not_its_id():
    key = "ray.io/v1/RayCluster"
    top = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
    doc = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c"}, "spec": {"x": 1}}

    def loose():
        return {"type": "object", "properties": {**top, "spec": {"type": "object"}}}

    def strict():
        return {"type": "object", "properties": {**top, "spec": {"type": "object", "properties": {"y": {}}}}}

    schemas = {key: loose()}
    assert validate.schema_problems(doc, schemas) == []
    schemas[key] = strict()  # the same dict (the same id), another schema: CRDs reloaded in a long-lived process
    assert validate.schema_problems(doc, schemas), "a stale (loose) validator was used"
    for _ in range(20):  # schema sets made afresh and dropped, whose ids Python recycles
        assert validate.schema_problems(doc, {key: loose()}) == []
        assert validate.schema_problems(doc, {key: strict()})
