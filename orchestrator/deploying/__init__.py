"""Deploying: KubeRay RayCluster/RayJob manifests, kustomize bases, and the offline validator (``kube``).

May import: job (the spec a manifest runs, the TPU slice), modelling (``--from-report``'s recommendation).
"""
