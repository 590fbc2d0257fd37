"""Checks docker-compose.yml without a Docker engine.

The file is read as Compose does (YAML anchors and merge keys resolved, `${VAR:-default}`
interpolated with the defaults) and validated by the compose-spec parser (PyPI `compose-spec`);
then the properties the deployment depends on are checked: every long-running service has a
health check and a restart policy, the worker can scale (no container name, no published port),
Redis persists with AOF, data lives in named volumes, and every file mounted from the repository
exists.
"""

import json
import os
import re
import sys

import yaml
from compose_spec import PyCompose

root = sys.argv[1]
raw = yaml.safe_load(open(os.path.join(root, "docker-compose.yml")))


def interpolate(value):
    if isinstance(value, str):
        return re.sub(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}", lambda m: m.group(2) or "", value)
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items() if not key.startswith("x-")}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    return value


compose = interpolate(raw)
PyCompose.from_json(json.dumps(compose))  # raises ValueError on anything Compose would refuse
services = compose["services"]
expected = {"postgres", "redis", "eventflow-api", "eventflow-worker", "prometheus", "grafana"}
assert set(services) == expected, sorted(services)
for name, service in services.items():
    # EventFlow's own services take their health check from their Dockerfile's HEALTHCHECK.
    assert "healthcheck" in service or "build" in service, name
    assert service.get("restart") == "unless-stopped", name
worker = services["eventflow-worker"]
assert "container_name" not in worker and "ports" not in worker, "the worker must scale"
assert "--appendonly" in services["redis"]["command"], "Redis persists with AOF"
for name in ("postgres", "redis", "prometheus", "grafana"):
    assert any(not v.startswith(".") for v in services[name]["volumes"]), f"{name} keeps data in a volume"
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert os.path.exists(os.path.join(root, source)), f"{name} mounts missing {source}"
    build = service.get("build")
    if build:
        assert os.path.exists(os.path.join(root, build["dockerfile"])), build
for dockerfile in ("Dockerfile", "Dockerfile.worker"):
    text = open(os.path.join(root, dockerfile)).read()
    assert "HEALTHCHECK" in text and "USER eventflow" in text, dockerfile
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in copied.split():
            assert os.path.exists(os.path.join(root, source)), f"{dockerfile} copies missing {source}"
print(f"docker-compose.yml: {len(services)} services valid")
