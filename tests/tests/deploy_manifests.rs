//! The Kubernetes manifests (deploy/kubernetes) as a platform team receives them: each overlay
//! renders with kustomize, validates against the Kubernetes API schemas offline and passes the
//! static security scan (deploy/test/validate: kubernetes-validate and checkov), and holds what
//! running Spate needs: a Parallel StatefulSet whose pods can form a quorum before they are
//! ready, one pod per machine, probes on the admin port's health endpoints, a grace period
//! longer than the controlled shutdown, a locked-down security context, and the Services,
//! PodDisruptionBudget, NetworkPolicy and ServiceMonitor wired to the right ports.

mod deploy_support;

use std::process::Command;

use deploy_support::Manifests;
use serde_json::Value;
use spate_e2e::paths;

fn render(kustomization: &str) -> Manifests {
    Manifests::render(kustomization).unwrap_or_else(|e| panic!("{e:#}"))
}

fn container_port(container: &Value, name: &str) -> i64 {
    container["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

#[test]
fn manifests_validate_and_pass_the_security_scan() {
    let script = paths::repo_root().join("deploy/test/validate");
    let output = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "deploy/test/validate failed:\n{text}"
    );
    assert!(text.contains("Failed checks: 0"), "{text}");
}

#[test]
fn the_statefulset_is_shaped_for_a_quorum() {
    let manifests = render("overlays/three-node");
    let sts = manifests.statefulset().unwrap();
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    assert_eq!(spec["serviceName"], "spate");
    let pod = &spec["template"]["spec"];
    let container = manifests.container().unwrap();

    // The headless Service publishes not-ready pods, so peers resolve before the quorum exists.
    let headless = manifests.find("Service", "spate").unwrap();
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);

    // Probes: startup and liveness on /health/live, readiness on /health/ready, admin port.
    assert_eq!(container_port(container, "admin"), 9644);
    for (probe, path) in [
        ("startupProbe", "/health/live"),
        ("livenessProbe", "/health/live"),
        ("readinessProbe", "/health/ready"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    // Startup allows the initial registration timeout (60 s) at least.
    let startup = &container["startupProbe"];
    let startup_s =
        startup["periodSeconds"].as_i64().unwrap() * startup["failureThreshold"].as_i64().unwrap();
    assert!(startup_s >= 60, "startup probe allows only {startup_s}s");
    // The grace period outlasts the controlled shutdown (5 s) with room to close the logs.
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() >= 30);

    // Security: non-root with a fixed uid, read-only root, no capabilities, RuntimeDefault.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}"
            );
        }
    }

    // Placement: one pod per machine (required), spread over zones, SSD/NVMe preferred.
    let anti =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(anti[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert!(
        pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            .is_array()
    );
    // The data volume is a claim per pod on the local SSD/NVMe class, mounted at the data dir.
    let claim = &spec["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "data");
    assert_eq!(claim["spec"]["storageClassName"], "local-nvme");
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "data" && m["mountPath"] == "/var/lib/spate")
    );

    // The PodDisruptionBudget lets one pod go at a time and selects the pods.
    let pdb = manifests.find("PodDisruptionBudget", "spate").unwrap();
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        spec["selector"]["matchLabels"]
    );

    // The client Service offers Kafka and the CloudEvents ingress.
    let client = manifests.find("Service", "spate-bootstrap").unwrap();
    let ports: Vec<i64> = client["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, vec![9092, 8080]);

    // The NetworkPolicy opens 9092/8080 to all, 9093 to peers, 9644 to Prometheus.
    let policy = manifests.find("NetworkPolicy", "spate").unwrap();
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    let ports_of = |rule: &Value| -> Vec<i64> {
        rule["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect()
    };
    assert!(rules[0].get("from").is_none());
    assert_eq!(ports_of(&rules[0]), vec![9092, 8080]);
    assert_eq!(
        rules[1]["from"][0]["podSelector"]["matchLabels"],
        spec["selector"]["matchLabels"]
    );
    assert_eq!(ports_of(&rules[1]), vec![9093]);
    assert_eq!(ports_of(&rules[2]), vec![9644]);
}

/// The ServiceMonitor (a custom resource, which the schema validation cannot check) selects the
/// headless Service and scrapes its admin port's /metrics.
#[test]
fn the_service_monitor_scrapes_the_admin_port() {
    let manifests = render("overlays/three-node");
    let text = std::fs::read_to_string(
        paths::repo_root()
            .join("deploy/kubernetes/components/prometheus-operator/servicemonitor.yaml"),
    )
    .unwrap();
    let monitor: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let headless = manifests.find("Service", "spate").unwrap();
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for (key, value) in selector {
        assert_eq!(&headless["metadata"]["labels"][key], value, "label {key}");
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let port = headless["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the ServiceMonitor's port is on the headless Service");
    assert_eq!(port["port"], 9644);
}
