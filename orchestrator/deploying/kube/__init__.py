"""Kubernetes: pure builders of KubeRay manifests (manifests.py) and their validation (validate.py)."""
