"""deploy/: Kubernetes and KServe manifests, checked against the Kubernetes schemas and against tritonlite itself.

Built-in kinds are validated strictly (unknown fields fail) with kubernetes-validate's bundled OpenAPI
schemas. KServe, Prometheus Operator and kustomize kinds have no schema there and get structural checks.
What the manifests name in tritonlite (command-line flags, probe paths, metric names, the image
version) is checked against the code.
"""

from __future__ import annotations

import copy
import inspect
import re
import shlex

import pytest
from deploy_helpers import DEPLOY, DOCKERFILES, k8s_objects, load_documents, objects_of_kind, parse_dockerfile

import tritonlite
from tritonlite.cli import build_parser

BUILTIN_GROUPS = ("v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1", "batch/v1")
IMAGE_REPOSITORY = "tritonlite/tritonlite"
ADAPTER_VALUES = DEPLOY / "kubernetes" / "autoscaling" / "prometheus-adapter-values.yaml"
GRAFANA = DEPLOY / "grafana"  # Grafana provisioning files, not Kubernetes objects
TRITON_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


def kubernetes_validate():
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in the test extras")


def server_routes() -> set[str]:
    """The HTTP paths tritonlite serves (its FastAPI app's routes; its source if the builder's signature moved)."""
    from tritonlite.frontends.http import routes

    try:
        return {route.path for route in routes.build_api(None).routes}
    except TypeError:
        return set(re.findall(r"""@api\.(?:get|post)\(\s*["']([^"']+)["']""", inspect.getsource(routes)))


def tritonlite_metric_names() -> set[str]:
    """The metric families tritonlite exports (the live exposition is checked in test_docker_install_smoke.py)."""
    from tritonlite.metrics import families

    return set(re.findall(r"""\(\s*["'](nv_[a-z_]+)["']""", inspect.getsource(families)))


def deployments() -> dict[str, dict]:
    """The plain Deployments by flavor (the folder: cpu or gpu)."""
    return {path.parent.name: doc for path, doc in objects_of_kind("Deployment")}


def container(doc: dict) -> dict:
    (only,) = doc["spec"]["template"]["spec"]["containers"]
    return only


def parse_server_args(args: list[str]):
    """tritonlite-server's own parser accepts the arguments (it exits on an unknown or refused flag)."""
    return build_parser().parse_args(args)


# --------------------------------------------------------------------------- every object


def test_objects_were_found():
    kinds = sorted(doc["kind"] for _, doc in k8s_objects())
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "ServingRuntime", "InferenceService"):
        assert kind in kinds, f"no {kind} under deploy/"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*.yaml") if GRAFANA not in p.parents),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_file_parses_and_has_metadata(path):
    docs = load_documents(path)
    assert docs, f"{path} is empty"
    if path == ADAPTER_VALUES:
        return  # helm values, not an object
    for doc in docs:
        assert {"apiVersion", "kind"} <= set(doc), f"{path}: apiVersion and kind are required"
        if doc["kind"] != "Kustomization":
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), doc["metadata"]


@pytest.mark.parametrize(
    ("path", "doc"),
    [(p, d) for p, d in k8s_objects() if d["apiVersion"] in BUILTIN_GROUPS],
    ids=lambda value: str(value.relative_to(DEPLOY)) if hasattr(value, "relative_to") else value.get("kind"),
)
def test_builtin_kinds_validate_against_kubernetes_schema(path, doc):
    kv = kubernetes_validate()
    kv.validate(doc, kv.latest_version(), strict=True)


def test_schema_validation_catches_mistakes():
    """The validator is really consulted: a misspelled field and a wrong type both fail."""
    kv = kubernetes_validate()
    doc = copy.deepcopy(deployments()["cpu"])
    container(doc)["readinessProbe"]["httpGett"] = container(doc)["readinessProbe"].pop("httpGet")
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, kv.latest_version(), strict=True)
    doc = copy.deepcopy(deployments()["cpu"])
    container(doc)["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, kv.latest_version(), strict=True)


def test_kustomizations_list_existing_files():
    for path, doc in objects_of_kind("Kustomization"):
        for resource in doc["resources"]:
            target = (path.parent / resource).resolve()
            assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{path}: {resource}"


# --------------------------------------------------------------------------- Deployment and Service


def test_deployment_flavors_and_images():
    found = deployments()
    assert set(found) == {"cpu", "gpu"}
    for flavor, doc in found.items():
        assert container(doc)["image"] == f"{IMAGE_REPOSITORY}:{tritonlite.__version__}-{flavor}"


def test_images_are_consistent_everywhere():
    """Every manifest runs a tritonlite image of this version; the Dockerfiles' labels agree."""
    images = []
    for path, doc in k8s_objects():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {}) if doc["kind"] == "Deployment" else spec
        images += [(path, c["image"]) for c in pod.get("containers", [])]
    assert images
    for path, image in images:
        repository, _, tag = image.rpartition(":")
        assert repository == IMAGE_REPOSITORY and re.fullmatch(
            rf"{re.escape(tritonlite.__version__)}-(cpu|gpu)", tag
        ), (
            path,
            image,
        )
    for dockerfile in DOCKERFILES.values():
        assert parse_dockerfile(dockerfile).arg_default("VERSION") == tritonlite.__version__


@pytest.mark.parametrize("flavor", ["cpu", "gpu"])
def test_deployment_ports_probes_and_args(flavor):
    doc = deployments()[flavor]
    main = container(doc)
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    assert ports == TRITON_PORTS
    args = parse_server_args(main["args"])
    assert (args.http_port, args.grpc_port, args.metrics_port) == (8000, 8001, 8002)
    assert args.model_repository == ["/models"]
    routes = server_routes()
    expected = {"livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}
    for probe_name, path in expected.items():
        probe = main[probe_name]["httpGet"]
        assert probe["path"] == path and path in routes
        assert probe["port"] in ports
    assert main["startupProbe"]["httpGet"]["path"] in routes
    mounts = {mount["mountPath"]: mount for mount in main["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True


@pytest.mark.parametrize("flavor", ["cpu", "gpu"])
def test_deployment_resources_and_security(flavor):
    doc = deployments()[flavor]
    main = container(doc)
    resources = main["resources"]
    for key in ("cpu", "memory"):
        assert key in resources["requests"] and key in resources["limits"]
    gpus = resources["limits"].get("nvidia.com/gpu")
    if flavor == "gpu":
        assert gpus == 1 and resources["requests"]["nvidia.com/gpu"] == 1
        assert doc["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    else:
        assert gpus is None
    pod_security = doc["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    image_user = parse_dockerfile(DOCKERFILES[flavor]).final.all("USER")[-1].value.split(":")[0]
    assert str(pod_security["runAsUser"]) == image_user
    assert main["securityContext"]["allowPrivilegeEscalation"] is False


def test_metrics_are_scraped_from_the_metrics_port():
    for doc in deployments().values():
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(TRITON_PORTS["metrics"])
        assert annotations["prometheus.io/path"] == "/metrics"
    (monitor,) = [doc for _, doc in objects_of_kind("ServiceMonitor")]
    (service,) = [doc for _, doc in objects_of_kind("Service")]
    assert monitor["spec"]["endpoints"][0]["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_service_matches_deployments():
    (service,) = [doc for _, doc in objects_of_kind("Service")]
    assert {port["name"]: port["port"] for port in service["spec"]["ports"]} == TRITON_PORTS
    for doc in deployments().values():
        pod_labels = doc["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        container_ports = {port["name"] for port in container(doc)["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= container_ports
        claim = doc["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        assert claim in {d["metadata"]["name"] for _, d in objects_of_kind("PersistentVolumeClaim")}


# --------------------------------------------------------------------------- autoscaling


def adapter_rules() -> dict[str, dict]:
    (values,) = load_documents(ADAPTER_VALUES)
    assert values["rules"]["default"] is False
    return {rule["name"]["as"]: rule for rule in values["rules"]["custom"]}


def test_adapter_rules_use_real_tritonlite_metrics():
    known = tritonlite_metric_names()
    assert {"nv_inference_queue_duration_us", "nv_inference_pending_request_count"} <= known
    rules = adapter_rules()
    assert rules
    for name, rule in rules.items():
        series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)
        assert series in known, f"{name}: {series} is not a tritonlite metric"
        assert re.fullmatch(rule["name"]["matches"], series)
        used = set(re.findall(r"\b(nv_[a-z_]+)\{", rule["metricsQuery"]))
        assert used and used <= known, f"{name}: {used - known} are not tritonlite metrics"
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    series = {re.match(r"\s*(\w+)", rule["seriesQuery"]).group(1) for rule in rules.values()}
    assert series == {"nv_inference_queue_duration_us", "nv_inference_pending_request_count"}


def test_hpas_scale_on_adapter_metrics():
    rules = adapter_rules()
    hpas = objects_of_kind("HorizontalPodAutoscaler")
    assert len(hpas) == 2
    targets = {doc["metadata"]["name"] for _, doc in objects_of_kind("Deployment")}
    isvcs = {doc["metadata"]["name"] for _, doc in objects_of_kind("InferenceService")}
    targets |= {f"{name}-predictor" for name in isvcs}  # KServe RawDeployment's Deployment name
    for path, hpa in hpas:
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["kind"] == "Deployment" and spec["scaleTargetRef"]["name"] in targets, path
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        names = [metric["pods"]["metric"]["name"] for metric in spec["metrics"] if metric["type"] == "Pods"]
        assert names and set(names) <= set(rules), f"{path}: {set(names) - set(rules)} has no adapter rule"


# --------------------------------------------------------------------------- KServe


def serving_runtime() -> dict:
    (runtime,) = [doc for _, doc in objects_of_kind("ServingRuntime")]
    return runtime


def test_serving_runtime_speaks_v2_and_serves_a_triton_repository():
    runtime = serving_runtime()
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    spec = runtime["spec"]
    assert {"v2", "grpc-v2"} <= set(spec["protocolVersions"])
    formats = {fmt["name"]: fmt for fmt in spec["supportedModelFormats"]}
    assert formats["triton"]["version"] == "2" and formats["triton"]["autoSelect"] is True
    assert spec["annotations"]["prometheus.kserve.io/port"] == "8002"
    (main,) = spec["containers"]
    assert main["name"] == "kserve-container"  # the name KServe's storage initializer and agent expect
    assert main["command"] == ["tritonlite-server"]
    args = parse_server_args(main["args"])
    # KServe's conventions: the model downloaded to /mnt/models, REST on 8080, gRPC on 9000
    assert args.model_repository == ["/mnt/models"]
    assert (args.http_port, args.grpc_port, args.metrics_port) == (8080, 9000, 8002)
    assert {port["containerPort"] for port in main["ports"]} == {8080}
    assert main["securityContext"]["runAsNonRoot"] is True


def test_inference_service_uses_the_runtime():
    runtime = serving_runtime()
    (isvc,) = [doc for _, doc in objects_of_kind("InferenceService")]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] == "v2"
    formats = {(fmt["name"], fmt["version"]) for fmt in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"]["version"]) in formats
    assert re.match(r"(s3|gs|pvc|https?)://", model["storageUri"])
    annotations = isvc["metadata"]["annotations"]
    # KServe's own HPA is off; deploy/kserve/hpa.yaml scales the predictor on queue metrics instead
    assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert annotations["serving.kserve.io/autoscalerClass"] == "external"
    assert isvc["spec"]["predictor"]["maxReplicas"] >= isvc["spec"]["predictor"]["minReplicas"] >= 1


def test_readme_commands_name_existing_paths():
    """The README's kubectl/helm commands point at files and folders that exist."""
    from deploy_helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Docker and Kubernetes", 1)[1]
    paths = set()
    for line in section.splitlines():
        if line.strip().startswith(("kubectl", "helm", "docker")):
            paths |= {word for word in shlex.split(line.replace("\\", "")) if word.startswith(("deploy/", "docker/"))}
    assert paths, "the README section names no deploy/ or docker/ files"
    for path in paths:
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"
