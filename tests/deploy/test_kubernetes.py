"""deploy/kubernetes/: valid against the Kubernetes schemas (offline, kubernetes-validate),
probes on the server's health endpoints, non-root, and a configuration check-config accepts;
docs/deploy.md's commands run."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.cli_server import run_cli

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
KUBERNETES_VERSION = "1.37.0"


def _documents() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[doc["kind"]] = doc
    return found


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    docs = _documents()
    assert set(docs) == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}
    for doc in docs.values():
        # strict: an unknown or misplaced field is an error, not silently dropped.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_misplaced_field_is_caught() -> None:
    deployment = _documents()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_deployment_probes_the_health_endpoints_and_runs_as_non_root() -> None:
    docs = _documents()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    operations = yaml.safe_load((ROOT / "spec" / "operations.yaml").read_text())
    assert {"/readyz", "/healthz"} <= set(operations["paths"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # The Service, the PodDisruptionBudget and the Deployment select the same pods.
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # Every variable the configuration reads comes from the Secret.
    config_text = docs["ConfigMap"]["data"]["app-config.yaml"]
    assert set(re.findall(r"\$\{(\w+)\}", config_text)) <= set(docs["Secret"]["stringData"])
    assert container["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]


def test_the_configmap_configuration_passes_strict_check_config_for_production(
    tmp_path: Path,
) -> None:
    docs = _documents()
    config = tmp_path / "app-config.yaml"
    config.write_text(docs["ConfigMap"]["data"]["app-config.yaml"])
    env = {**os.environ, **docs["Secret"]["stringData"]}
    # --strict, as docs/deploy.md runs it: no warning either.
    result = run_cli("check-config", "--production", "--strict", "--config", str(config), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "https://backstage.example.com/api/auth/oidc/handler/frame" in result.stdout


def test_the_validation_command_in_the_deploy_doc_runs() -> None:
    text = DEPLOY_DOC.read_text()
    command = "kubernetes-validate --strict deploy/kubernetes/*.yaml"
    assert command in text
    tool = Path(sys.executable).parent / "kubernetes-validate"
    files = sorted(str(p.relative_to(ROOT)) for p in MANIFESTS.glob("*.yaml"))
    result = subprocess.run(
        [str(tool), "--strict", *files], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_doc_names_the_files_it_describes() -> None:
    text = DEPLOY_DOC.read_text()
    for path in MANIFESTS.glob("*.yaml"):
        assert path.name in text
    assert "docs/migrating-from-backstage.md" in text
    assert "discovery:" in text and "plugins: [auth]" in text
