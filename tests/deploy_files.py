"""Consistency of the container and Kubernetes files (run by tests/deploy.rs).

No Docker engine or cluster runs here, so this checks what can be checked without one: every
file parses, and names and ports agree across files. Prints the Sluis configurations it found
as JSON, for the Rust test to validate with `sluis config check`."""
import json
import re
import sys
import tomllib

import yaml


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def host_of(addr):
    return addr.rsplit(":", 1)[0]


def check_container():
    d = "deploy/container"
    compose = yaml.safe_load(open(f"{d}/compose.yaml"))
    services = compose["services"]
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        image = svc.get("image", "")
        if "build" not in svc:
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
    cfg = tomllib.load(open(f"{d}/sluis.toml", "rb"))
    listen = port_of(cfg["server"]["listen"][0])
    admin = port_of(cfg["server"]["admin_listen"])
    sluis = services["sluis"]
    exposed = {int(p) for p in sluis.get("expose", [])}
    assert {listen, admin} <= exposed, f"sluis exposes {exposed}, config uses {listen}, {admin}"
    policy_port = port_of(cfg["upstream"]["policy_map_listen"])
    assert policy_port in exposed, f"sluis does not expose the policy map port {policy_port}"
    up_env = services["upstream"]["environment"]
    assert up_env["SLUIS_HOST"] == "sluis" and int(up_env["SLUIS_POLICY_PORT"]) == policy_port
    report_port = port_of(cfg["review"]["report_listen"])
    assert report_port in exposed, f"sluis does not expose the report port {report_port}"
    assert int(up_env["SLUIS_REPORT_PORT"]) == report_port
    assert up_env["SLUIS_HOSTNAME"] == cfg["server"]["hostname"]
    # The store: the compose PostgreSQL, its password from the environment on both sides.
    store = cfg["store"]
    db_host = store["url"].split("@", 1)[1].split(":", 1)[0]
    assert db_host in services and db_host in sluis["depends_on"], db_host
    assert sluis["environment"]["SLUIS_STORE_PASSWORD"] == \
        services[db_host]["environment"]["POSTGRES_PASSWORD"]
    assert store["url"].endswith("/" + services[db_host]["environment"]["POSTGRES_DB"])
    front = services["front"]["environment"]
    assert front["SLUIS_HOST"] == "sluis" and int(front["SLUIS_PORT"]) == listen
    subnet = compose["networks"]["mail"]["ipam"]["config"][0]["subnet"]
    assert subnet in cfg["server"]["allow_networks"], "Sluis must allow the compose network"
    assert front["MYNETWORKS"] == subnet == services["upstream"]["environment"]["MYNETWORKS"]
    lanes_cf = open("deploy/postfix/lanes-master.cf").read()
    up_exposed = {int(p) for p in services["upstream"]["expose"]}
    for name, lane in cfg["upstream"]["lanes"].items():
        host, port = host_of(lane["address"]), port_of(lane["address"])
        assert host in services, f"lane {name}: {host} is not a service"
        assert port in up_exposed, f"lane {name}: upstream does not expose {port}"
        assert f"127.0.0.1:{port} inet" in lanes_cf, f"lane {name}: no {port} in lanes-master.cf"
    prom = yaml.safe_load(open(f"{d}/prometheus.yml"))
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"sluis:{admin}"], targets
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "../prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in services["prometheus"]["volumes"]
    dash_provider = yaml.safe_load(open(f"{d}/grafana/dashboards.yaml"))["providers"][0]
    dash_mount = "../grafana/sluis-dashboard.json:" + dash_provider["options"]["path"] + "/sluis.json:ro"
    assert dash_mount in services["grafana"]["volumes"], dash_mount
    ds = yaml.safe_load(open(f"{d}/grafana/datasource.yaml"))["datasources"][0]
    assert ds["url"] == "http://prometheus:9090"
    assert "9090:9090" in services["prometheus"]["ports"]
    docker = open(f"{d}/Dockerfile").read()
    stages = re.findall(r"^FROM (\S+)", docker, re.M)
    assert len(stages) >= 2, "multi-stage build"
    final = docker[docker.rindex("\nFROM "):]
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user and user.group(1).split(":")[0] not in ("0", "root"), "final stage runs as root"
    assert "distroless" in stages[-1] or "slim" in stages[-1], "minimal base"
    assert f"EXPOSE {listen} {admin} {policy_port} {report_port}" in final
    assert "COPY deploy/container/sluis.toml /etc/sluis/sluis.toml" in final
    assert '"--config", "/etc/sluis/sluis.toml"' in final
    entry = open(f"{d}/postfix/entrypoint.sh").read()
    for snippet in ("relayhost-main.cf", "lanes-master.cf", "lanes-main.cf"):
        assert f"/snippets/{snippet}" in entry
    assert "../postfix:/snippets:ro" in services["front"]["volumes"]
    return open(f"{d}/sluis.toml").read()


def check_kubernetes():
    d = "deploy/kubernetes"
    docs = {}
    services = []
    for f in ("configmap.yaml", "statefulset.yaml", "service.yaml", "pdb.yaml", "hpa.yaml"):
        for doc in yaml.safe_load_all(open(f"{d}/{f}")):
            if doc["kind"] == "Service":
                services.append(doc)
            docs[doc["kind"]] = doc
    assert set(docs) == {"ConfigMap", "StatefulSet", "Service", "PodDisruptionBudget",
                         "HorizontalPodAutoscaler"}, set(docs)
    toml_text = docs["ConfigMap"]["data"]["sluis.toml"]
    cfg = tomllib.loads(toml_text)
    dep = docs["StatefulSet"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    c = dep["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["smtp"] == port_of(cfg["server"]["listen"][0])
    assert ports["admin"] == port_of(cfg["server"]["admin_listen"])
    assert ports["policy-map"] == port_of(cfg["upstream"]["policy_map_listen"])
    assert ports["reports"] == port_of(cfg["review"]["report_listen"])
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["spool"] == cfg["server"]["spool_dir"]
    # The spool (quarantine, audit log) is a persistent volume per instance.
    claims = {t["metadata"]["name"] for t in dep["spec"]["volumeClaimTemplates"]}
    assert "spool" in claims, claims
    assert dep["spec"]["serviceName"] in {s["metadata"]["name"] for s in services}
    assert c["args"] == ["serve", "--config", f"{mounts['config']}/sluis.toml"]
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    for svc in services:
        assert svc["spec"]["selector"].items() <= labels.items()
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, p
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert hpa["scaleTargetRef"]["kind"] == "StatefulSet"
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    return toml_text


def check_kubernetes_postgres():
    """The stateless variant: a Deployment on a shared PostgreSQL store."""
    d = "deploy/kubernetes"
    docs = {}
    for f in ("postgres/configmap.yaml", "postgres/deployment.yaml", "postgres/secret.yaml",
              "postgres/hpa.yaml", "service.yaml", "pdb.yaml"):
        for doc in yaml.safe_load_all(open(f"{d}/{f}")):
            docs.setdefault(doc["kind"], []).append(doc)
    toml_text = docs["ConfigMap"][0]["data"]["sluis.toml"]
    cfg = tomllib.loads(toml_text)
    store = cfg["store"]
    assert store["kind"] == "postgres" and store["tls"] == "verify", store
    assert ":" not in store["url"].split("//", 1)[1].split("@", 1)[0], "no password in the URL"
    dep = docs["Deployment"][0]
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert "volumeClaimTemplates" not in dep["spec"], "no volume per pod"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["spool"] == cfg["server"]["spool_dir"]
    assert "emptyDir" in volumes["spool"], "the spool is scratch space"
    secret = docs["Secret"][0]
    assert volumes["db"]["secret"]["secretName"] == secret["metadata"]["name"]
    for key in ("password_file", "ca_file"):
        path = store[key]
        assert path.startswith(mounts["db"] + "/"), f"{key} {path} is not in the secret's mount"
        assert path.rsplit("/", 1)[1] in secret["stringData"], f"the secret has no {path}"
    assert volumes["config"]["configMap"]["name"] == docs["ConfigMap"][0]["metadata"]["name"]
    assert c["args"] == ["serve", "--config", f"{mounts['config']}/sluis.toml"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert spec["terminationGracePeriodSeconds"] > 30
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for svc in docs["Service"]:
        assert svc["spec"]["selector"].items() <= labels.items()
    hpa = docs["HorizontalPodAutoscaler"][0]["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Deployment", dep["metadata"]["name"])
    return toml_text


if __name__ == "__main__":
    configs = {"container": check_container(), "kubernetes": check_kubernetes(),
               "kubernetes-postgres": check_kubernetes_postgres()}
    json.dump(configs, sys.stdout)
