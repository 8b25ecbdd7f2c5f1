"""Checks of the Helm chart and the container image recipe, run by tests/integration/deploy.rs.

Usage: chart.py CATCHUP_BINARY

- helm lint (Helm's own Go SDK through helm-python-sdk; no helm binary) of both modes, strict;
- both modes rendered, every manifest validated against the Kubernetes schemas (kubernetes-validate);
  the CRD kinds (ServiceMonitor, PrometheusRule) checked for shape, and the alert rules by promtool;
- the rendered catchup.toml and policies accepted by `catchup config check`;
- the pod hardening and probes asserted;
- bad values (wrong type, missing required field) refused by values.schema.json, naming the field;
- the chart's policy copies identical to policies/;
- every metric and label the dashboard and the alerts use exported by `catchup demo`'s /metrics.

Prints one line per check; exits 1 on the first failure with the reason.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CHART = os.path.join(ROOT, "helm", "catchup")
KUBE = "1.30.0"
BINARY = sys.argv[1]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}")


def values(name):
    with open(os.path.join(CHART, "ci", name)) as f:
        return yaml.safe_load(f)


def render(vals):
    chart = helm.Chart.load(CHART)
    out = chart.render(vals, name="catchup", namespace="ingest", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((path, doc))
    return docs


def check_lint():
    for name in ["standalone-msk-values.yaml", "sidecar-values.yaml", "ha-values.yaml"]:
        report = helm.lint(CHART, values(name), strict=True, kube_version="v" + KUBE)
        bad = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
        if bad:
            fail(f"helm lint {name}: {bad}")
        ok(f"helm lint --strict with ci/{name}")


CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def check_manifests(mode, docs):
    kinds = sorted({d["kind"] for _, d in docs})
    for path, doc in docs:
        if doc["kind"] in CRD_KINDS:
            if doc.get("apiVersion") != "monitoring.coreos.com/v1" or "spec" not in doc:
                fail(f"{path}: not a monitoring.coreos.com/v1 {doc['kind']} with a spec")
            continue
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
        except Exception as e:  # noqa: BLE001 - report any validation failure with the manifest
            fail(f"{mode}: {path} ({doc['kind']}) is not valid Kubernetes {KUBE}: {e}")
    ok(f"{mode}: {len(docs)} manifests valid against Kubernetes {KUBE} schemas: {', '.join(kinds)}")
    objs = {d["kind"]: d for _, d in docs if d["kind"] not in ("Deployment", "ConfigMap")}
    objs["Deployments"] = [d for _, d in docs if d["kind"] == "Deployment"]
    config_maps = [d for _, d in docs if d["kind"] == "ConfigMap" and "catchup.toml" in d.get("data", {})]
    if len(config_maps) != 1:
        fail(f"{mode}: one ConfigMap with catchup.toml, found {len(config_maps)}")
    objs["ConfigMap"] = config_maps[0]
    return objs


def catchup_container(deployment):
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        if c["name"] == "catchup":
            return c
    fail(f"no catchup container in {deployment['metadata']['name']}")


def check_hardening(mode, deployment):
    spec = deployment["spec"]["template"]["spec"]
    c = catchup_container(deployment)
    sc = c["securityContext"]
    expect = {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
    }
    for k, v in expect.items():
        if sc.get(k) != v:
            fail(f"{mode}: securityContext.{k} = {sc.get(k)}, want {v}")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        fail(f"{mode}: capabilities must drop ALL")
    # Non-root from the container's own context, whatever the host pod sets.
    if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
        fail(f"{mode}: the catchup container must run as non-root")
    psc = spec.get("securityContext", {})
    if psc.get("runAsUser") == 0:
        fail(f"{mode}: the pod runs as root")
    probes = {k: c[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe") if k in c}
    want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    if mode != "standalone":
        # A sidecar must not hold its host pod un-Ready while it waits for data.
        del want["readinessProbe"]
    if probes != want:
        fail(f"{mode}: probes {probes}, want {want}")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    if "/var/lib/catchup" not in mounts:
        fail(f"{mode}: no writable state volume")
    ok(f"{mode}: non-root, read-only root fs, no privilege escalation, capabilities dropped, probes {probes}, state volume")


def check_token_mounts(mode, objs, deployment):
    """Every token file the rendered config names is mounted into the catchup container from the
    Secret; a host container that calls the gate gets the consumer token only."""
    config = objs["ConfigMap"]["data"]["catchup.toml"]
    wanted = re.findall(r'token_file\s*=\s*"(/etc/catchup/token/[^"]+)"', config)
    if not wanted:
        fail(f"{mode}: the rendered config names no token file:\n{config}")
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}

    def mounted(container):
        files = set()
        for m in container.get("volumeMounts", []):
            secret = volumes.get(m["name"], {}).get("secret")
            if secret:
                files |= {os.path.join(m["mountPath"], i["path"]) for i in secret.get("items", [])}
        return files

    containers = {c["name"]: c for c in spec["containers"]}
    have = mounted(containers["catchup"])
    missing = [f for f in wanted if f not in have]
    if missing:
        fail(f"{mode}: the config reads {missing}, but the catchup container mounts only {sorted(have)}")
    for name, c in containers.items():
        if name == "catchup" or "Authorization" not in " ".join(c.get("command", [])):
            continue
        files = mounted(c)
        operator = [f for f in files if f.endswith("/" + "token")]
        if operator or not any(f.endswith("consumer-token") for f in files):
            fail(f"{mode}: host container {name} calls the gate with {sorted(files)}: it needs the consumer token and never the operator token")
    ok(f"{mode}: every token file the config names is mounted ({', '.join(wanted)}); a host container gets the consumer token only")


def check_config(mode, objs):
    cm = objs["ConfigMap"] if "ConfigMap" in objs else None
    if cm is None:
        fail(f"{mode}: no ConfigMap")
    tmp = tempfile.mkdtemp()
    try:
        os.makedirs(os.path.join(tmp, "policies"))
        for key, text in cm["data"].items():
            if key.endswith(".toml") and key != "catchup.toml":
                with open(os.path.join(tmp, "policies", key), "w") as f:
                    f.write(text)
        config = cm["data"]["catchup.toml"].replace("/etc/catchup/", tmp + "/")
        config = config.replace("/var/lib/catchup", os.path.join(tmp, "state"))
        path = os.path.join(tmp, "catchup.toml")
        with open(path, "w") as f:
            f.write(config)
        r = subprocess.run([BINARY, "config", "check", path], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{mode}: catchup config check refused the rendered config:\n{config}\n{r.stderr}")
        ok(f"{mode}: rendered catchup.toml accepted by catchup config check ({r.stdout.strip().split(': ', 1)[1]})")
        return config
    finally:
        shutil.rmtree(tmp)


def check_parent_chart():
    """The README's sidecar snippet: a host chart with catchup as a dependency."""
    tmp = tempfile.mkdtemp()
    try:
        parent = os.path.join(tmp, "ingestion")
        os.makedirs(os.path.join(parent, "templates"))
        shutil.copytree(CHART, os.path.join(parent, "charts", "catchup"))
        with open(os.path.join(parent, "Chart.yaml"), "w") as f:
            f.write("apiVersion: v2\nname: ingestion\nversion: 0.1.0\ndependencies:\n  - name: catchup\n    version: 0.1.0\n")
        with open(os.path.join(parent, "values.yaml"), "w") as f:
            yaml.safe_dump({"catchup": values("sidecar-values.yaml") | {"sidecar": {"instances": 3}}}, f)
        with open(os.path.join(parent, "templates", "deployment.yaml"), "w") as f:
            f.write(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ingestion\nspec:\n  replicas: 3\n"
                "  selector:\n    matchLabels: {app: ingestion}\n  template:\n    metadata:\n      labels: {app: ingestion}\n"
                "    spec:\n      containers:\n        - name: ingestion\n          image: busybox:1.36\n"
                '        {{- include "catchup.sidecar.container" .Subcharts.catchup | nindent 8 }}\n'
                "      volumes:\n"
                '        {{- include "catchup.sidecar.volumes" .Subcharts.catchup | nindent 8 }}\n'
            )
        out = helm.Chart.load(parent).render(None, name="ing", namespace="ingest")
        host = yaml.safe_load(out["ingestion/templates/deployment.yaml"])
        kubernetes_validate.validate(host, KUBE, strict=True)
        names = [c["name"] for c in host["spec"]["template"]["spec"]["containers"]]
        if names != ["ingestion", "catchup"]:
            fail(f"parent chart: containers {names}")
        check_hardening("parent chart sidecar", host)
        ok("the README's sidecar snippet: a host chart including catchup.sidecar.container and catchup.sidecar.volumes renders a valid Deployment")
    finally:
        shutil.rmtree(tmp)


def check_bad_values():
    chart = helm.Chart.load(CHART)
    base = values("standalone-msk-values.yaml")
    cases = [
        ("wrong type", {**base, "service": {"port": "eighty"}}, "/service/port"),
        (
            "missing required field",
            {**base, "config": {"cluster": {"kind": "msk", "msk": {"auth": "iam"}}}},
            "cluster_arn",
        ),
        ("bad enum", {**base, "mode": "daemonset"}, "/mode"),
        ("typo in a key", {**base, "imagee": {"repository": "x"}}, "imagee"),
    ]
    for what, vals, field in cases:
        try:
            chart.validate_schema(vals)
        except helm.HelmValuesError as e:
            if field not in str(e):
                fail(f"{what}: the schema error does not name {field}: {e}")
            ok(f"{what} refused at install time, naming {field}: {str(e).strip().splitlines()[-1].strip()}")
            continue
        fail(f"{what}: values accepted: {vals}")


def check_policy_copies():
    shipped = sorted(os.listdir(os.path.join(ROOT, "policies")))
    copies = sorted(os.listdir(os.path.join(CHART, "files", "policies")))
    if shipped != copies:
        fail(f"chart policies {copies} differ from policies/ {shipped}")
    for name in shipped:
        a = open(os.path.join(ROOT, "policies", name)).read()
        b = open(os.path.join(CHART, "files", "policies", name)).read()
        if a != b:
            fail(f"helm/catchup/files/policies/{name} differs from policies/{name}: copy it again")
    ok(f"chart policies identical to policies/: {', '.join(shipped)}")


# --- metric names and labels -------------------------------------------------------------------

PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "ignoring", "on", "or", "and", "absent",
    "max", "min", "avg", "count", "le", "without", "unless",
}


def references(expr):
    """(metric, {labels}) pairs an expression uses: selector labels and by/ignoring/on labels."""
    refs = []
    grouping = set()
    for m in re.finditer(r"\b(?:by|ignoring|on|without)\s*\(([^)]*)\)", expr):
        grouping |= {l.strip() for l in m.group(1).split(",") if l.strip()}
    for m in re.finditer(r"\b(catchup_[a-z_]+)\s*(\{([^}]*)\})?", expr):
        labels = set()
        if m.group(3):
            for matcher in m.group(3).split(","):
                name = re.split(r"=~|!=|!~|=", matcher.strip())[0].strip()
                if name:
                    labels.add(name)
        refs.append((m.group(1), labels | (grouping - {"le"})))
    return refs


def scrape_demo():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    state = tempfile.mkdtemp()
    p = subprocess.Popen(
        [BINARY, "demo", "--listen", f"127.0.0.1:{port}", "--speed", "600", "--state-dir", state],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        text = ""
        deadline = time.time() + 60
        # Until the families the rules use have series: retention lowered, actions taken.
        while time.time() < deadline:
            time.sleep(1)
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
            if "catchup_actions_total{" in text and 'value="original"' in text and "catchup_broker_disk_time_to_ceiling_seconds{" in text:
                break
        return text
    finally:
        p.terminate()
        p.wait(timeout=30)
        shutil.rmtree(state, ignore_errors=True)


def exported(text):
    """metric name -> set of label names seen on its samples (names as PromQL sees them)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            if kind == "counter":
                out.setdefault(name + "_total", set())
            elif kind == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    out.setdefault(name + suffix, set())
            else:
                out.setdefault(name, set())
            continue
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m:
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            out.setdefault(m.group(1), set()).update(labels)
    return out


def check_metrics(standalone_docs):
    rule = next(d for _, d in standalone_docs if d["kind"] == "PrometheusRule")
    dash_cm = next(d for _, d in standalone_docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    dashboard = json.loads(dash_cm["data"]["catchup.json"])
    exprs = [(f"alert {r['alert']}", r["expr"]) for g in rule["spec"]["groups"] for r in g["rules"]]
    for panel in dashboard["panels"]:
        for t in panel["targets"]:
            exprs.append((f"panel {panel['title']!r}", t["expr"]))
            for label in re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", t.get("legendFormat", "")):
                exprs.append((f"panel {panel['title']!r} legend", "catchup_x{" + label + '=""}'))
    text = scrape_demo()
    have = exported(text)
    if "catchup_ready" not in have:
        fail(f"no catchup metrics scraped from catchup demo:\n{text[:500]}")
    # Prometheus adds job and instance (and the operator namespace, pod, ...) at scrape time.
    target_labels = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
    checked = 0
    for where, expr in exprs:
        refs = references(expr)
        if where.endswith("legend"):
            # A legend label must exist on one of the panel's metrics.
            label = next(iter(refs[0][1]))
            panel_metrics = [m for w, e in exprs if w == where[: -len(" legend")] for m, _ in references(e)]
            if label not in target_labels and not any(label in have.get(m, set()) for m in panel_metrics):
                fail(f"{where}: label {label} is not on any of {panel_metrics}")
            continue
        for metric, labels in refs:
            if metric not in have:
                fail(f"{where}: metric {metric} is not exported by catchup (expr: {expr})")
            missing = labels - have[metric] - target_labels
            if missing:
                fail(f"{where}: {metric} has no label {sorted(missing)} (it has {sorted(have[metric])}; expr: {expr})")
            checked += 1
    ok(f"{len(exprs)} dashboard and alert expressions: {checked} metric references, all exported by catchup demo with their labels")
    return rule


def check_operator_labels():
    """The Prometheus operator selects rules and monitors by label (e.g. release: prometheus): with
    labels set, both objects must still render as valid manifests, with the labels and every rule."""
    vals = values("standalone-msk-values.yaml")
    vals.setdefault("prometheusRule", {})["labels"] = {"release": "prometheus"}
    vals.setdefault("serviceMonitor", {})["labels"] = {"release": "prometheus"}
    docs = render(vals)
    check_manifests("standalone with operator labels", docs)
    plain = next(d for _, d in render(values("standalone-msk-values.yaml")) if d["kind"] == "PrometheusRule")
    for kind in ["PrometheusRule", "ServiceMonitor"]:
        obj = next((d for _, d in docs if d["kind"] == kind), None)
        if obj is None:
            fail(f"operator labels: no {kind} rendered")
        labels = obj["metadata"].get("labels", {})
        if labels.get("release") != "prometheus" or any(not isinstance(v, str) for v in labels.values()):
            fail(f"operator labels: {kind} labels {labels}")
    rule = next(d for _, d in docs if d["kind"] == "PrometheusRule")
    if rule["spec"] != plain["spec"]:
        fail("operator labels: the rules differ from those rendered without labels")
    ok("prometheusRule.labels and serviceMonitor.labels render (valid manifests, same rules)")


def check_runbook(rule):
    text = open(os.path.join(ROOT, "docs", "runbook.md")).read()
    headings = {h.strip() for h in re.findall(r"^### (.+)$", text, re.M)}
    for g in rule["spec"]["groups"]:
        for r in g["rules"]:
            name = r["alert"]
            if name not in headings:
                fail(f"alert {name} has no section in docs/runbook.md")
            if not r["annotations"]["runbook_url"].endswith("#" + name.lower()):
                fail(f"alert {name}: runbook_url {r['annotations']['runbook_url']} does not point at its section")
    ok(f"every alert has its section in docs/runbook.md and a runbook_url to it")


def check_promtool(rule):
    if not shutil.which("promtool"):
        fail("promtool not found (Debian package prometheus)")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
    r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode != 0:
        fail(f"promtool check rules: {r.stdout}{r.stderr}")
    ok(f"promtool check rules: {r.stdout.strip().splitlines()[-1].strip()}")


def check_ha():
    """Standalone in HA mode: two replicas, RollingUpdate, a PDB, no volume, [ha] in the config and
    the pod's name as its instance id."""
    docs = render(values("ha-values.yaml"))
    objs = check_manifests("ha", docs)
    d = objs["Deployments"][0]
    if d["spec"]["replicas"] != 2 or d["spec"]["strategy"]["type"] != "RollingUpdate":
        fail(f"ha: 2 replicas with RollingUpdate, got {d['spec']['replicas']} {d['spec']['strategy']}")
    if "PodDisruptionBudget" not in objs:
        fail("ha: no PodDisruptionBudget")
    if "PersistentVolumeClaim" in objs:
        fail("ha: needs no volume, but renders a PersistentVolumeClaim")
    volumes = d["spec"]["template"]["spec"]["volumes"]
    if any("persistentVolumeClaim" in v for v in volumes):
        fail(f"ha: mounts a claim: {volumes}")
    env = {e["name"]: e for e in catchup_container(d).get("env", [])}
    if env.get("CATCHUP_HA_INSTANCE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        fail(f"ha: CATCHUP_HA_INSTANCE is not the pod's name: {env}")
    check_token_mounts("ha", objs, d)
    config = check_config("ha", objs)
    if "[ha]" not in config or 'name = "ingest-fleet"' not in config:
        fail(f"ha: no [ha] with the name in the config:\n{config}")
    ok("ha: 2 replicas, RollingUpdate, PDB, no volume, [ha] name = ingest-fleet, instance = pod name")


def check_ha_sidecar():
    """Sidecars in HA mode: standby members of the deployment's election, not barred from
    retention (the elected leader owns it; ownsRetention applies only without HA)."""
    vals = values("sidecar-values.yaml")
    vals["ha"] = {"enabled": True, "name": "ingest-fleet"}
    docs = render(vals)
    objs = check_manifests("ha-sidecar", docs)
    host = objs["Deployments"][0]
    env = {e["name"]: e for e in catchup_container(host).get("env", [])}
    if env.get("CATCHUP_HA_INSTANCE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        fail(f"ha-sidecar: CATCHUP_HA_INSTANCE is not the pod's name: {env}")
    config = check_config("ha-sidecar", objs)
    if "standby = true" not in config or 'name = "ingest-fleet"' not in config:
        fail(f"ha-sidecar: no standby member of ingest-fleet in the config:\n{config}")
    if "retention_actions" in config:
        fail(f"ha-sidecar: barred from retention, so a sidecar leader could never act:\n{config}")
    ok("ha-sidecar: standby members of ingest-fleet, retention left to whoever leads")
    # Without a name the sidecars would elect a leader of their own beside the standalone
    # release's, both changing retention: refused at install time.
    vals["ha"] = {"enabled": True}
    try:
        render(vals)
    except Exception as e:
        if "ha.name is required" not in str(e):
            fail(f"ha-sidecar without ha.name: refused, but not naming ha.name: {e}")
        ok("ha-sidecar without ha.name: refused at install time, naming ha.name")
    else:
        fail("ha-sidecar without ha.name: rendered; sidecars would elect a second leader")


def main():
    check_lint()
    standalone = render(values("standalone-msk-values.yaml"))
    objs = check_manifests("standalone", standalone)
    deployments = objs["Deployments"]
    if len(deployments) != 1 or deployments[0]["spec"]["replicas"] != 1:
        fail("standalone: one Deployment with one replica")
    if deployments[0]["spec"]["strategy"]["type"] != "Recreate":
        fail("standalone: strategy must be Recreate (never two controllers)")
    for kind in ["Service", "ServiceAccount", "ConfigMap", "Secret", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "PersistentVolumeClaim"]:
        if kind not in objs:
            fail(f"standalone: no {kind}")
    if objs["ServiceAccount"]["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn") is None:
        fail("standalone: the IRSA annotation is not on the ServiceAccount")
    check_hardening("standalone", deployments[0])
    check_token_mounts("standalone", objs, deployments[0])
    config = check_config("standalone", objs)
    if "retention_actions" in config:
        fail("standalone: owns retention (no retention_actions = false)")

    sidecar = render(values("sidecar-values.yaml"))
    sobjs = check_manifests("sidecar", sidecar)
    kinds = {d["kind"] for _, d in sidecar}
    if {"Service", "PodDisruptionBudget", "NetworkPolicy"} & kinds:
        fail(f"sidecar: renders standalone objects: {kinds}")
    host = sobjs["Deployments"][0]
    names = [c["name"] for c in host["spec"]["template"]["spec"]["containers"]]
    if names != ["ingestion", "catchup"]:
        fail(f"sidecar: host containers {names}")
    check_hardening("sidecar", host)
    check_token_mounts("sidecar", sobjs, host)
    config = check_config("sidecar", sobjs)
    if "retention_actions = false" not in config or "instances = 2" not in config:
        fail(f"sidecar: must leave retention to one owner and share the rate by 2:\n{config}")
    ok("sidecar: gates only (retention_actions = false), rate shared by gate.instances = 2")

    check_ha()
    check_ha_sidecar()
    check_parent_chart()
    check_bad_values()
    check_operator_labels()
    check_policy_copies()
    rule = check_metrics(standalone)
    check_promtool(rule)
    check_runbook(rule)


main()
