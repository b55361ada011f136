#!/usr/bin/env python3
"""Offline checks of the deployment files: `make deploy-check`.

One line per check (PASS, FAIL or SKIP); exits 1 if any check failed.

- deploy/k8s/*.yaml: every resource against the Kubernetes schemas shipped by
  kubernetes-validate (strict: unknown fields fail), then how the resources fit
  together (selectors, references, probes, security, PgBouncer's pool mode);
  kustomization.yaml: parsed, and every file it lists exists.
- deploy/nginx.conf: `nginx -t` on a throwaway full configuration around it,
  then real requests through it to a stub upstream (Host, forwarded headers,
  request id, /api/metrics/ refused, body limit, HTTP to HTTPS).
- deploy/compose.yml: `docker compose config -q` when the docker compose CLI is
  there, and always a structural check with PyYAML.
- deploy/Dockerfile and .dockerignore: by text.

Needs no network, no Docker engine and no cluster. nginx comes from Debian's
packages: when it is missing and we are root, it is installed with apt-get.
"""

# ruff: noqa: S603, S607, S108  (runs nginx, openssl, apt-get and docker by name; /tmp is checked, not used)

from __future__ import annotations

import argparse
import configparser
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes_validate import utils as kv  # the dev extra: `make install` has it

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.33.0"  # kubernetes-validate 1.37.0 ships 1.25 ... 1.37
NAMESPACE = "tenantdesk"
WEB_PORT = 8000
WORKER_METRICS_PORT = 9808
APP_COMPONENTS = ("web", "worker", "beat", "migrate")


# --- reporting ---------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}

    def line(self, status: str, name: str, detail: str = "") -> None:
        self.counts[status] += 1
        print(f"{status}  {name}" + (f": {detail}" if detail else ""), flush=True)

    def check(self, name: str, problems: list[str], ok_detail: str = "") -> bool:
        """PASS when `problems` is empty, else FAIL listing them."""
        if problems:
            self.line("FAIL", name, "; ".join(problems))
            return False
        self.line("PASS", name, ok_detail)
        return True

    def skip(self, name: str, why: str) -> None:
        self.line("SKIP", name, why)


R = Report()


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def guarded(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """A crash inside one group of checks is a FAIL of that group, not a traceback."""

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a check must report, not crash the run
                R.line("FAIL", name, f"{type(exc).__name__}: {exc}")

        return run

    return wrap


# --- Kubernetes ----------------------------------------------------------------------


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        try:
            loaded = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as exc:
            R.line("FAIL", f"k8s {path.name}: YAML", str(exc).replace("\n", " "))
            continue
        if not loaded:
            R.line("FAIL", f"k8s {path.name}", "no resource in the file")
        docs.extend((path, d) for d in loaded)
    return docs


def kn(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"


def check_k8s_schemas(docs: list[tuple[Path, dict[str, Any]]]) -> None:
    for path, doc in docs:
        name = f"k8s {path.name} {kn(doc)}"
        try:
            version = kv.validate(doc, KUBERNETES_VERSION, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(top)"
            R.line("FAIL", name, f"{where}: {exc.message}")
        except kv.SchemaNotFoundError as exc:  # the CLI only warns here; a typo in kind/apiVersion is an error
            R.line("FAIL", name, exc.message)
        else:
            R.line("PASS", name, f"valid against Kubernetes {version} (strict)")


def is_workload(doc: dict[str, Any]) -> bool:
    return doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job")


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def template_labels(doc: dict[str, Any]) -> dict[str, str]:
    return doc["spec"]["template"].get("metadata", {}).get("labels", {}) or {}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def probe_port_problems(container: dict[str, Any], probe_name: str) -> list[str]:
    probe = container.get(probe_name)
    if not probe:
        return []
    names = {p.get("name") for p in container.get("ports", [])}
    numbers = {p.get("containerPort") for p in container.get("ports", [])}
    for kind in ("httpGet", "tcpSocket"):
        if kind in probe:
            port = probe[kind]["port"]
            if (isinstance(port, str) and port not in names) or (isinstance(port, int) and port not in numbers):
                return [f"{container['name']}.{probe_name} uses port {port!r}, not declared"]
    return []


def check_k8s_structure(docs: list[tuple[Path, dict[str, Any]]]) -> None:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

    def get(kind: str, name: str) -> dict[str, Any] | None:
        return by_kind.get(kind, {}).get(name)

    workloads = [d for _, d in docs if is_workload(d)]

    # Namespace on every namespaced resource.
    problems = [
        f"{kn(d)} in namespace {d['metadata'].get('namespace')!r}"
        for _, d in docs
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != NAMESPACE
    ]
    if not get("Namespace", NAMESPACE):
        problems.append(f"no Namespace {NAMESPACE}")
    R.check("k8s namespace", problems, f"every resource in {NAMESPACE}")

    # Selectors match their pods; Services, PDBs and HPAs find their targets.
    problems = []
    for d in workloads:
        sel = d["spec"].get("selector", {}).get("matchLabels")
        if d["kind"] != "Job" and (not sel or not selects(sel, template_labels(d))):
            problems.append(f"{kn(d)}: selector does not match its pod labels")
    for kind in ("Service", "PodDisruptionBudget"):
        for name, d in by_kind.get(kind, {}).items():
            sel = d["spec"]["selector"]
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            if not any(selects(sel, template_labels(w)) for w in workloads):
                problems.append(f"{kind}/{name} selects no pod")
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = hpa["spec"]["scaleTargetRef"]
        if not get(ref["kind"], ref["name"]):
            problems.append(f"HorizontalPodAutoscaler/{name} targets missing {ref['kind']}/{ref['name']}")
    for name, service in by_kind.get("Service", {}).items():
        pods = [w for w in workloads if selects(service["spec"]["selector"], template_labels(w))]
        ports = {p.get("name") for w in pods for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
        for p in service["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                problems.append(f"Service/{name} targetPort {p['targetPort']} is no container port")
    R.check("k8s selectors and targets", problems, "Deployments, Services, PDBs and HPAs line up")

    # Every ConfigMap and Secret a pod refers to is defined (Secrets: in secret.example.yaml).
    problems = []
    for w in workloads:
        spec = pod_spec(w)
        refs: list[tuple[str, str, str | None]] = []
        for c in spec["containers"]:
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    refs.append(("ConfigMap", src["configMapRef"]["name"], None))
                if "secretRef" in src:
                    refs.append(("Secret", src["secretRef"]["name"], None))
            for env in c.get("env", []):
                vf = env.get("valueFrom", {})
                if "configMapKeyRef" in vf:
                    refs.append(("ConfigMap", vf["configMapKeyRef"]["name"], vf["configMapKeyRef"]["key"]))
                if "secretKeyRef" in vf:
                    refs.append(("Secret", vf["secretKeyRef"]["name"], vf["secretKeyRef"]["key"]))
        for v in spec.get("volumes", []):
            if "configMap" in v:
                refs.append(("ConfigMap", v["configMap"]["name"], None))
            if "secret" in v:
                refs.append(("Secret", v["secret"]["secretName"], None))
        for kind, name, key in refs:
            target = get(kind, name)
            if not target:
                problems.append(f"{kn(w)} refers to missing {kind}/{name}")
            elif key and key not in {**target.get("data", {}), **target.get("stringData", {})}:
                problems.append(f"{kn(w)} refers to missing key {key} of {kind}/{name}")
    R.check("k8s references", problems, "every ConfigMap, Secret and key referred to exists")

    # Application pods: image, env, security, resources, /tmp, probes.
    problems = []
    app = {}
    for w in workloads:
        component = template_labels(w).get("app.kubernetes.io/component")
        if template_labels(w).get("app.kubernetes.io/name") == "tenantdesk" and component in APP_COMPONENTS:
            app[component] = w
    for component in APP_COMPONENTS:
        if component not in app:
            problems.append(f"no workload with component {component}")
    images = set()
    for w in app.values():
        spec = pod_spec(w)
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("runAsUser") in (None, 0):
            problems.append(f"{kn(w)}: pod must set runAsNonRoot and a non-zero runAsUser")
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec["containers"]:
            images.add(c["image"])
            csc = c.get("securityContext", {})
            if not csc.get("readOnlyRootFilesystem") or csc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{kn(w)}/{c['name']}: readOnlyRootFilesystem and no privilege escalation")
            if not any(m["mountPath"] == "/tmp" and m["name"] in tmp_volumes for m in c.get("volumeMounts", [])):
                problems.append(f"{kn(w)}/{c['name']}: /tmp must be an emptyDir (read-only root filesystem)")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                problems.append(f"{kn(w)}/{c['name']}: resources need requests and limits")
            env_sources = {
                s.get("configMapRef", {}).get("name") or s.get("secretRef", {}).get("name")
                for s in c.get("envFrom", [])
            }
            if not {"tenantdesk-config", "tenantdesk-secrets"} <= env_sources:
                problems.append(f"{kn(w)}/{c['name']}: envFrom must include tenantdesk-config and tenantdesk-secrets")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                problems += probe_port_problems(c, probe)
    if len(images) != 1:
        problems.append(f"web, worker, beat and migrate must run one image, not {sorted(images)}")
    R.check("k8s app pods", problems, "non-root, read-only root with /tmp emptyDir, resources, one image")

    # Per process.
    problems = []
    web, worker, beat, job = (app.get(c) for c in APP_COMPONENTS)
    if web:
        c = pod_spec(web)["containers"][0]
        if web["spec"].get("replicas") != 2:
            problems.append("web: replicas 2")
        if c.get("command") != ["gunicorn", "config.wsgi", "-c", "deploy/gunicorn.conf.py"]:
            problems.append(f"web: command {c.get('command')}")
        for probe, path in (("readinessProbe", "/api/health/ready/"), ("livenessProbe", "/api/health/")):
            if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                problems.append(f"web: {probe} must GET {path}")
        if "startupProbe" not in c:
            problems.append("web: startupProbe")
        ann = web["spec"]["template"]["metadata"].get("annotations", {})
        scrape = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(WEB_PORT),
            "prometheus.io/path": "/api/metrics/",
        }
        if any(ann.get(k) != v for k, v in scrape.items()):
            problems.append(f"web: scrape annotations {scrape}")
        if not any(p["containerPort"] == WEB_PORT for p in c.get("ports", [])):
            problems.append(f"web: containerPort {WEB_PORT}")
        pdbs = [
            p
            for p in by_kind.get("PodDisruptionBudget", {}).values()
            if selects(p["spec"]["selector"]["matchLabels"], template_labels(web))
        ]
        if not pdbs:
            problems.append("web: no PodDisruptionBudget")
    if worker:
        c = pod_spec(worker)["containers"][0]
        if c.get("command", [])[:4] != ["celery", "-A", "config", "worker"]:
            problems.append(f"worker: command {c.get('command')}")
        if not any(p["containerPort"] == WORKER_METRICS_PORT for p in c.get("ports", [])):
            problems.append(f"worker: metrics port {WORKER_METRICS_PORT}")
        if "livenessProbe" not in c:
            problems.append("worker: livenessProbe")
    if beat:
        c = pod_spec(beat)["containers"][0]
        if beat["spec"].get("replicas") != 1 or beat["spec"].get("strategy", {}).get("type") != "Recreate":
            problems.append("beat: exactly 1 replica with strategy Recreate")
        if c.get("command", [])[:4] != ["celery", "-A", "config", "beat"]:
            problems.append(f"beat: command {c.get('command')}")
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        if hpa["spec"]["scaleTargetRef"]["name"] == (beat or {}).get("metadata", {}).get("name"):
            problems.append("beat must not be autoscaled")
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    for scaled in (web, worker):
        if scaled and scaled["metadata"]["name"] not in hpa_targets:
            problems.append(f"{kn(scaled)}: no HorizontalPodAutoscaler")
    if job:
        c = pod_spec(job)["containers"][0]
        if job["kind"] != "Job" or c.get("command") != ["python", "manage.py", "bootstrap"]:
            problems.append("migrate: a Job running python manage.py bootstrap")
        for key in ("backoffLimit", "ttlSecondsAfterFinished"):
            if key not in job["spec"]:
                problems.append(f"migrate Job: {key}")
    R.check("k8s processes", problems, "web (probes, scrape, PDB, HPA), worker (HPA), beat (1, Recreate), migrate Job")

    # Settings: non-secret in the ConfigMap, secret in the Secret template, placeholders only.
    problems = []
    cm = get("ConfigMap", "tenantdesk-config")
    secret = get("Secret", "tenantdesk-secrets")
    if cm:
        data = cm.get("data", {})
        for key, want in {
            "DJANGO_ENV": "production",
            "BEHIND_TLS_PROXY": "true",
            "NUM_PROXIES": "1",
            "PUBLIC_SCHEME": "https",
            "PUBLIC_PORT": "443",
            "WORKER_METRICS_PORT": str(WORKER_METRICS_PORT),
        }.items():
            if data.get(key) != want:
                problems.append(f"ConfigMap {key} must be {want!r}, is {data.get(key)!r}")
        leaked = [k for k in data if re.search(r"SECRET|PASSWORD|TOKEN|_URL$", k)]
        if leaked:
            problems.append(f"secrets belong in the Secret, not the ConfigMap: {leaked}")
    if secret:
        values = {**secret.get("data", {}), **secret.get("stringData", {})}
        for key in ("SECRET_KEY", "DATABASE_URL"):
            if key not in values:
                problems.append(f"Secret template lacks {key}")
        real = [k for k, v in values.items() if "REPLACE-ME" not in str(v)]
        if real:
            problems.append(f"Secret template values must be REPLACE-ME placeholders: {real}")
        db = urlsplit(values.get("DATABASE_URL", ""))
        if db.hostname != "pgbouncer" or db.port != 6432:
            problems.append(f"DATABASE_URL must go through pgbouncer:6432, not {db.hostname}:{db.port}")
    for name, d in by_kind.get("Secret", {}).items():
        if any(
            str(v).strip() and "REPLACE-ME" not in str(v)
            for v in {**d.get("data", {}), **d.get("stringData", {})}.values()
        ):
            problems.append(f"Secret/{name}: placeholder values only")
    R.check("k8s settings", problems, "ConfigMap for settings, Secret template holds placeholders only")

    # PgBouncer: session mode, and the port the app dials.
    problems = []
    pgb = get("ConfigMap", "pgbouncer-config")
    if not pgb or "pgbouncer.ini" not in pgb.get("data", {}):
        problems.append("ConfigMap pgbouncer-config with pgbouncer.ini")
    else:
        ini = configparser.ConfigParser(inline_comment_prefixes=None, comment_prefixes=(";", "#"), interpolation=None)
        ini.read_string(pgb["data"]["pgbouncer.ini"])
        section = ini["pgbouncer"] if ini.has_section("pgbouncer") else {}
        if section.get("pool_mode", "").strip().lower() != "session":
            problems.append(f"pool_mode must be session (django-tenants' search_path), is {section.get('pool_mode')!r}")
        if re.search(r"^\s*pool_mode\s*=\s*(transaction|statement)", pgb["data"]["pgbouncer.ini"], re.M | re.I):
            problems.append("a transaction/statement pool_mode is set somewhere")
        if not ini.has_section("databases") or not dict(ini["databases"]):
            problems.append("pgbouncer.ini has no [databases] entry")
        port = int(section.get("listen_port", "6432"))
        dep = get("Deployment", "pgbouncer")
        container_ports = (
            {p.get("name"): p["containerPort"] for c in pod_spec(dep)["containers"] for p in c.get("ports", [])}
            if dep
            else {}
        )
        if port not in container_ports.values():
            problems.append(f"Deployment pgbouncer must declare containerPort {port} (listen_port)")
        svc = get("Service", "pgbouncer")
        exposed = [p for p in (svc or {}).get("spec", {}).get("ports", []) if p["port"] == 6432]
        if not exposed or container_ports.get(exposed[0].get("targetPort"), exposed[0].get("targetPort")) != port:
            problems.append(f"Service pgbouncer must expose 6432 onto listen_port {port}")
    R.check("k8s pgbouncer", problems, "pool_mode = session, listening on 6432 behind Service pgbouncer")

    # Ingress: base domain and wildcard, TLS for both, body size, a real backend.
    problems = []
    ingresses = by_kind.get("Ingress", {})
    main = ingresses.get("web")
    if not main:
        problems.append("no Ingress web")
    else:
        hosts = {r.get("host") for r in main["spec"]["rules"]}
        tls_hosts = {h for t in main["spec"].get("tls", []) for h in t.get("hosts", [])}
        for host in ("example.com", "*.example.com"):
            if host not in hosts:
                problems.append(f"Ingress rule for {host}")
            if host not in tls_hosts:
                problems.append(f"Ingress TLS for {host}")
        if not all(t.get("secretName") for t in main["spec"].get("tls", [])):
            problems.append("Ingress TLS needs a secretName")
        if main["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/proxy-body-size") != "1m":
            problems.append("Ingress proxy-body-size 1m")
    for name, ing in ingresses.items():
        for r in ing["spec"]["rules"]:
            for p in r["http"]["paths"]:
                svc = get("Service", p["backend"]["service"]["name"])
                port = p["backend"]["service"]["port"]
                if not svc or not any(
                    sp.get("name") == port.get("name") or sp["port"] == port.get("number")
                    for sp in svc["spec"]["ports"]
                ):
                    problems.append(f"Ingress/{name} backend {p['backend']['service']} does not exist")
    metrics = [
        i
        for i in ingresses.values()
        if any(p["path"].startswith("/api/metrics") for r in i["spec"]["rules"] for p in r["http"]["paths"])
    ]
    if not metrics or not all(
        i["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/whitelist-source-range") for i in metrics
    ):
        problems.append("/api/metrics must be refused at the Ingress (a source-range restricted path)")
    R.check("k8s ingress", problems, "example.com and *.example.com with TLS, body size 1m, /api/metrics refused")


def check_kustomization() -> None:
    path = K8S / "kustomization.yaml"
    problems = []
    try:
        kust = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        R.line("FAIL", "k8s kustomization.yaml", str(exc))
        return
    if kust.get("kind") != "Kustomization" or kust.get("namespace") != NAMESPACE:
        problems.append(f"kind Kustomization with namespace {NAMESPACE}")
    listed = kust.get("resources", [])
    problems += [f"lists missing {r}" for r in listed if not (K8S / r).is_file()]
    unlisted = {p.name for p in K8S.glob("*.yaml")} - set(listed) - {"kustomization.yaml", "secret.example.yaml"}
    problems += [f"{name} is not listed" for name in sorted(unlisted)]
    if "secret.example.yaml" in listed:
        problems.append("secret.example.yaml must not be listed (it would overwrite the real Secrets)")
    image_names = {i.get("name") for i in kust.get("images", [])}
    for r in listed:
        if (K8S / r).is_file():
            for doc in yaml.safe_load_all((K8S / r).read_text()):
                for c in pod_spec(doc)["containers"] if doc and is_workload(doc) else []:
                    if (
                        c["image"].startswith("registry.example.com/")
                        and c["image"].rsplit(":", 1)[0] not in image_names
                    ):
                        problems.append(f"{r}: image {c['image']} not under kustomization images")
    R.check(
        "k8s kustomization.yaml",
        problems,
        f"{len(listed)} resources listed, all present (secret.example.yaml left out)",
    )


# --- nginx ----------------------------------------------------------------------------


def find_nginx() -> str | None:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    print("....  nginx missing: apt-get install -y nginx (Debian's package)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx", "openssl"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
            return None
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_site(tmp: Path, upstream: str, http_port: int | None = None, https_port: int | None = None) -> str:
    """deploy/nginx.conf with its host names and paths pointed into `tmp`."""
    text = (DEPLOY / "nginx.conf").read_text()
    text, n = re.subn(r"\bserver\s+web:8000\b", f"server {upstream}", text)
    if n != 1:
        raise ValueError("deploy/nginx.conf: expected one `server web:8000` in the upstream")
    text = text.replace("/etc/nginx/tls/", f"{tmp}/tls/").replace("/var/log/nginx/", f"{tmp}/logs/")
    if http_port:
        text = re.sub(r"listen\s+80\b", f"listen 127.0.0.1:{http_port}", text)
    if https_port:
        text = re.sub(r"listen\s+443\b", f"listen 127.0.0.1:{https_port}", text)
    return text


def nginx_prefix(tmp: Path, site: str) -> Path:
    for sub in ("tls", "logs", "temp"):
        (tmp / sub).mkdir(exist_ok=True)
    # Run as root, nginx's workers are `nobody`: they must reach the temp files
    # (request bodies over 16k are buffered there).
    tmp.chmod(0o755)
    (tmp / "temp").chmod(0o777)
    cert = tmp / "tls" / "tls.crt"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=example.com",
                "-addext",
                "subjectAltName=DNS:example.com,DNS:*.example.com",
                "-keyout",
                str(tmp / "tls" / "tls.key"),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    (tmp / "tenantdesk.conf").write_text(site)
    temp = tmp / "temp"
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    access_log {tmp}/logs/access.log;
    include {tmp}/tenantdesk.conf;
}}
"""
    )
    return conf


class Upstream(BaseHTTPRequestHandler):
    """Stands in for gunicorn: answers 200 with what it received."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.record()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.record()

    def record(self) -> None:
        Upstream.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def running_nginx(nginx: str, tmp: Path) -> Iterator[tuple[int, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    http_port, https_port = free_port(), free_port()
    conf = nginx_prefix(tmp, nginx_site(tmp, f"127.0.0.1:{server.server_address[1]}", http_port, https_port))
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "logs" / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise RuntimeError(f"nginx exited: {out.strip()}") from None
                time.sleep(0.05)
        yield http_port, https_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.shutdown()
        server.server_close()


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None, tls: bool = True
) -> http.client.HTTPResponse:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def check_nginx() -> None:
    nginx = find_nginx()
    if not nginx:
        R.line(
            "FAIL",
            "nginx -t deploy/nginx.conf",
            "nginx is not installed and could not be installed (run as root on Debian: apt-get install -y nginx)",
        )
        return
    if not shutil.which("openssl"):
        R.line(
            "FAIL",
            "nginx -t deploy/nginx.conf",
            "openssl is needed for a throwaway certificate (apt-get install -y openssl)",
        )
        return
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False).stderr.strip()
    with tempfile.TemporaryDirectory(prefix="deploy-check-nginx-") as t:
        tmp = Path(t)
        conf = nginx_prefix(tmp, nginx_site(tmp, "127.0.0.1:8000"))
        done = subprocess.run(
            [nginx, "-t", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "logs" / "error.log")],
            capture_output=True,
            text=True,
            check=False,
        )
        output = " | ".join(line for line in (done.stdout + done.stderr).splitlines() if line.strip())
        warned = [line for line in output.split(" | ") if "[warn]" in line or "[emerg]" in line]
        if done.returncode != 0 or warned:
            R.line("FAIL", "nginx -t deploy/nginx.conf", output)
            return
        R.line("PASS", "nginx -t deploy/nginx.conf", f"{version}: syntax ok, no warnings (upstream web -> 127.0.0.1)")

    with tempfile.TemporaryDirectory(prefix="deploy-check-nginx-") as t:
        problems: list[str] = []
        Upstream.seen.clear()
        with running_nginx(nginx, Path(t)) as (http_port, https_port):
            r = request(http_port, "GET", "/api/auth/users/me/?x=1", {"Host": "acme.example.com"}, tls=False)
            if r.status != 301 or r.getheader("Location") != "https://acme.example.com/api/auth/users/me/?x=1":
                problems.append(f"HTTP must redirect to HTTPS, got {r.status} {r.getheader('Location')}")

            r = request(https_port, "GET", "/api/health/", {"Host": "acme.example.com", "X-Forwarded-For": "6.6.6.6"})
            seen = Upstream.seen[-1] if Upstream.seen else {}
            if r.status != 200 or seen.get("host") != "acme.example.com":
                problems.append(f"tenant Host must reach the upstream unchanged, got {r.status} {seen.get('host')!r}")
            if seen.get("x-forwarded-proto") != "https":
                problems.append(f"X-Forwarded-Proto must be https, got {seen.get('x-forwarded-proto')!r}")
            if seen.get("x-forwarded-for") != "127.0.0.1":
                problems.append(f"X-Forwarded-For must be the client address only, got {seen.get('x-forwarded-for')!r}")
            if not re.fullmatch(r"[0-9a-f]{32}", seen.get("x-request-id", "")):
                problems.append(f"X-Request-ID must be generated when absent, got {seen.get('x-request-id')!r}")

            request(
                https_port, "GET", "/api/products/", {"Host": "globex.example.com", "X-Request-ID": "client-id-123"}
            )
            if not Upstream.seen or Upstream.seen[-1].get("x-request-id") != "client-id-123":
                problems.append("the client's X-Request-ID must pass through")

            request(https_port, "GET", "/api/health/", {"Host": "shop.customer-domain.test"})
            if not Upstream.seen or Upstream.seen[-1].get("host") != "shop.customer-domain.test":
                problems.append("other hosts (custom tenant domains) must reach the app, which decides")

            before = len(Upstream.seen)
            for path in ("/api/metrics/", "/api/metrics", "//api/metrics/", "/api/%6Detrics/"):
                r = request(https_port, "GET", path, {"Host": "example.com", "Authorization": "Bearer x"})
                if r.status != 404:
                    problems.append(f"{path} from outside must be 404, got {r.status}")
            if len(Upstream.seen) != before:
                problems.append("/api/metrics reached the upstream")

            r = request(
                https_port,
                "POST",
                "/api/auth/users/",
                {"Host": "acme.example.com", "Content-Type": "application/json"},
                body=b"x" * (1024 * 1024 + 1),
            )
            if r.status != 413:
                problems.append(f"a body over 1m must be refused with 413, got {r.status}")
            r = request(
                https_port,
                "POST",
                "/api/auth/users/",
                {"Host": "acme.example.com", "Content-Type": "application/json"},
                body=b"x" * (1000 * 1024),
            )
            if r.status != 200:
                problems.append(f"a body under 1m must pass, got {r.status}")

            log = (Path(t) / "logs" / "access.log").read_text() if (Path(t) / "logs" / "access.log").exists() else ""
            if '"request_id":"client-id-123"' not in log:
                problems.append("the JSON access log must carry the request id")
        R.check(
            "nginx requests through deploy/nginx.conf",
            problems,
            "HTTP->HTTPS, Host kept, X-Forwarded-*, X-Request-ID kept or made, /api/metrics 404, 1m limit, JSON log",
        )


# --- compose ----------------------------------------------------------------------------


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_of(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def command_text(service: dict[str, Any]) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def check_compose() -> None:
    path = DEPLOY / "compose.yml"
    docker = shutil.which("docker")
    has_compose = (
        docker is not None
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    )
    if docker is not None and has_compose:
        env = {**os.environ, "SECRET_KEY": "x" * 64, "METRICS_TOKEN": "y" * 32}
        done = subprocess.run(
            [docker, "compose", "-f", str(path), "config", "-q"], capture_output=True, text=True, env=env, check=False
        )
        R.check("compose: docker compose config -q", [done.stderr.strip()] if done.returncode else [])
    else:
        R.skip(
            "compose: docker compose config -q",
            "the docker compose CLI is not available here; structural checks instead",
        )

    raw = path.read_text()
    try:
        compose = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        R.line("FAIL", "compose: YAML", str(exc).replace("\n", " "))
        return
    services: dict[str, dict[str, Any]] = compose.get("services") or {}
    R.check("compose: YAML", [] if services else ["no services"], f"{len(services)} services: {', '.join(services)}")

    problems = []
    for name in ("db", "pgbouncer", "redis", "migrate", "web", "worker", "beat", "nginx"):
        if name not in services:
            problems.append(f"service {name} missing")
    for name, svc in services.items():
        for dep, condition in depends_of(svc).items():
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep}")
            elif condition == "service_healthy":
                hc = services[dep].get("healthcheck") or {}
                if not hc.get("test") or hc.get("disable"):
                    problems.append(f"{name} waits for {dep} healthy, but {dep} has no healthcheck")
    for name in ("web", "worker", "beat"):
        deps = depends_of(services.get(name, {}))
        if deps.get("migrate") != "service_completed_successfully":
            problems.append(f"{name} must depend on migrate: service_completed_successfully")
        for dep in ("pgbouncer", "redis"):
            if deps.get(dep) != "service_healthy":
                problems.append(f"{name} must depend on {dep}: service_healthy")
    if depends_of(services.get("nginx", {})).get("web") != "service_healthy":
        problems.append("nginx must depend on web: service_healthy")
    R.check(
        "compose: depends_on",
        problems,
        "targets exist; web/worker/beat after migrate completed, pgbouncer and redis healthy",
    )

    problems = []
    migrate = services.get("migrate", {})
    if str(migrate.get("restart")) != "no" or "manage.py bootstrap" not in command_text(migrate):
        problems.append('migrate: python manage.py bootstrap with restart: "no"')
    if "gunicorn config.wsgi -c deploy/gunicorn.conf.py" not in command_text(services.get("web", {})):
        problems.append("web: the gunicorn command")
    if "celery -A config worker" not in command_text(services.get("worker", {})):
        problems.append("worker: celery -A config worker")
    beat = services.get("beat", {})
    if (
        "celery -A config beat" not in command_text(beat)
        or (beat.get("deploy") or {}).get("replicas", 1) != 1
        or beat.get("scale", 1) != 1
    ):
        problems.append("beat: celery -A config beat, one replica")
    for name, svc in services.items():
        build = svc.get("build")
        if build is None:
            continue
        context = (path.parent / (build if isinstance(build, str) else build.get("context", "."))).resolve()
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        if not (context / ".dockerignore").is_file():
            problems.append(f"{name} builds with context {context} that has no .dockerignore")
        if not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile} missing")
    for name in ("migrate", "web", "worker", "beat"):
        env = env_of(services.get(name, {}))
        if env.get("DJANGO_ENV") != "production":
            problems.append(f"{name}: DJANGO_ENV=production")
        db = urlsplit(re.sub(r"\$\{[^}]*\}", "x", env.get("DATABASE_URL", "")))
        if db.hostname != "pgbouncer":
            problems.append(f"{name}: DATABASE_URL must go through pgbouncer, not {db.hostname}")
        if not re.fullmatch(r"\$\{SECRET_KEY:?\?[^}]+\}", env.get("SECRET_KEY", "")):
            problems.append(
                f"{name}: SECRET_KEY must be ${{SECRET_KEY:?message}} (no default), is {env.get('SECRET_KEY')!r}"
            )
    for number, line in enumerate(raw.splitlines(), 1):
        m = re.match(r"\s*-?\s*SECRET_KEY\s*[:=]\s*(.*)", line)
        if m and not re.fullmatch(r"\$\{SECRET_KEY:?\?[^}]+\}", m.group(1).strip()):
            problems.append(
                f"compose.yml line {number}: SECRET_KEY must be ${{SECRET_KEY:?message}}, no default or literal"
            )
    nginx = services.get("nginx", {})
    if not any(str(v).startswith("./nginx.conf:") for v in nginx.get("volumes", [])):
        problems.append("nginx must mount ./nginx.conf")
    R.check(
        "compose: services",
        problems,
        "commands, build context with .dockerignore, production env through pgbouncer, SECRET_KEY required",
    )

    problems = []
    env = env_of(services.get("pgbouncer", {}))
    if env.get("POOL_MODE", "").lower() != "session":
        problems.append(
            f"pgbouncer POOL_MODE must be session (django-tenants' search_path), is {env.get('POOL_MODE')!r}"
        )
    if re.search(r"POOL_MODE\W+(transaction|statement)", raw, re.I):
        problems.append("a transaction/statement POOL_MODE appears in compose.yml")
    R.check("compose: pgbouncer", problems, "POOL_MODE=session")


# --- Dockerfile and .dockerignore ---------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    out = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def check_dockerfile() -> None:
    path = DEPLOY / "Dockerfile"
    instructions = dockerfile_instructions(path.read_text())
    problems = []
    froms = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    if len(froms) < 2:
        problems.append(f"multi-stage: {len(froms)} FROM")
    final = instructions[froms[-1] :] if froms else instructions
    users = [a for k, a in final if k == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final stage must end with a non-root USER, has {users}")
    healthchecks = [a for k, a in final if k == "HEALTHCHECK"]
    if not healthchecks or healthchecks[-1].upper().startswith("NONE"):
        problems.append("the final stage needs a HEALTHCHECK")
    elif "urllib" not in healthchecks[-1] or "/api/health/" not in healthchecks[-1]:
        problems.append("HEALTHCHECK: python urllib on /api/health/ (no curl in slim)")
    body = "\n".join(f"{k} {a}" for k, a in instructions)  # comments excluded
    for bad, why in (
        (r"\[dev\]", "the dev extra"),
        (r"pgserver", "pgserver"),
        (r"pip install[^\n]*\s-e\s", "an editable install"),
    ):
        if re.search(bad, body):
            problems.append(f"installs {why}")
    if not any(k == "ENV" and re.search(r"\bDJANGO_ENV=production\b", a) for k, a in final):
        problems.append("ENV DJANGO_ENV=production in the final stage")
    if not any(k == "EXPOSE" and str(WEB_PORT) in a.split() for k, a in final):
        problems.append(f"EXPOSE {WEB_PORT}")
    cmd = [a for k, a in final if k == "CMD"]
    if not cmd or "gunicorn" not in cmd[-1] or "deploy/gunicorn.conf.py" not in cmd[-1]:
        problems.append("CMD: the gunicorn web command")
    if not any(k == "RUN" and "collectstatic" in a for k, a in final):
        problems.append("collectstatic at build")
    for k, a in instructions:
        if k in ("ENV", "ARG") and re.search(
            r"\b(SECRET_KEY|JWT_SIGNING_KEY|METRICS_TOKEN|DATABASE_URL|REDIS_URL|EMAIL_URL|\w*PASSWORD\w*)\b", a
        ):
            problems.append(f"a secret baked in: {k} {a}")
        if k == "RUN" and "SECRET_KEY=" in a and not re.search(r"SECRET_KEY=unused[-\w]*\s", a):
            problems.append("SECRET_KEY in a RUN must be a throwaway build-time value")
    R.check(
        "Dockerfile",
        problems,
        f"{len(froms)} stages, USER {users[-1] if users else '?'}, HEALTHCHECK, no dev extra, no secrets",
    )


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a directory covers what is under it."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip().strip("/")
        if pat.startswith("./"):
            pat = pat[2:]
        regex = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                regex += ".*"
                i += 2
            elif pat[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pat[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pat[i])
                i += 1
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def check_dockerignore() -> None:
    path = ROOT / ".dockerignore"
    if not path.is_file():
        R.line("FAIL", ".dockerignore", "missing at the repository root (compose builds with context ..)")
        return
    patterns = [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    problems = []
    must_exclude = [
        ".venv/bin/python",
        ".data/secret_key",
        ".data/pg/postgresql.conf",
        ".git/config",
        ".env",
        ".env.production",
        "tests/conftest.py",
        "staticfiles/admin/x.css",
        "config/__pycache__/settings.cpython-311.pyc",
        ".pytest_cache/v",
        ".mypy_cache/x",
        ".ruff_cache/x",
        "node_modules/x",
        "bench/results.json",
    ]
    must_keep = [
        "manage.py",
        "pyproject.toml",
        "config/settings.py",
        "config/wsgi.py",
        "deploy/gunicorn.conf.py",
        "core/__init__.py",
        "tenants/models.py",
        "accounts/models.py",
        "catalog/models.py",
        "devtools/apps.py",
    ]
    problems += [f"{p} is not excluded" for p in must_exclude if not dockerignore_excludes(patterns, p)]
    problems += [f"{p} is excluded but the image needs it" for p in must_keep if dockerignore_excludes(patterns, p)]
    R.check(
        ".dockerignore",
        problems,
        ".venv, .data, .git, .env*, caches, tests out; the app, devtools and deploy/gunicorn.conf.py in",
    )


def check_ports() -> None:
    """One port story: gunicorn binds $PORT (8000), the image exposes it, nginx and k8s use it."""
    problems = []
    gunicorn = (DEPLOY / "gunicorn.conf.py").read_text()
    if not re.search(r"""environ\.get\(\s*["']PORT["']\s*,\s*["']8000["']\s*\)""", gunicorn) or not re.search(
        r"^bind\s*=.*0\.0\.0\.0", gunicorn, re.M
    ):
        problems.append("deploy/gunicorn.conf.py no longer binds 0.0.0.0:$PORT with PORT defaulting to 8000")
    if "server web:8000" not in (DEPLOY / "nginx.conf").read_text():
        problems.append("nginx upstream is not web:8000")
    if "127.0.0.1:8000/api/health/" not in (DEPLOY / "compose.yml").read_text():
        problems.append("compose web healthcheck is not on 127.0.0.1:8000/api/health/")
    R.check(
        "ports", problems, "gunicorn $PORT=8000 = EXPOSE = nginx upstream = compose healthcheck; worker metrics 9808"
    )


def main() -> int:
    global ROOT, DEPLOY, K8S
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository to check (default: this one)")
    ROOT = parser.parse_args().root.resolve()
    DEPLOY, K8S = ROOT / "deploy", ROOT / "deploy" / "k8s"
    print(f"deploy-check: {ROOT}")
    docs: list[tuple[Path, dict[str, Any]]] = []

    @guarded("k8s")
    def k8s() -> None:
        nonlocal docs
        docs = k8s_documents()
        check_k8s_schemas(docs)
        check_k8s_structure(docs)

    k8s()
    guarded("k8s kustomization.yaml")(check_kustomization)()
    guarded("nginx")(check_nginx)()
    guarded("compose")(check_compose)()
    guarded("Dockerfile")(check_dockerfile)()
    guarded(".dockerignore")(check_dockerignore)()
    guarded("ports")(check_ports)()
    c = R.counts
    print(f"deploy-check: {c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped")
    return 1 if c["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
