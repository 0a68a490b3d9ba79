//! The krew manifest installs this plugin: its name, version and binary are the crate's.

use serde_json::Value;

#[test]
fn the_krew_manifest_names_this_binary_and_version() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/krew/procshot.yaml"))
        .unwrap();
    let manifest: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "procshot", "kubectl procshot");
    let spec = &manifest["spec"];
    assert_eq!(spec["version"], format!("v{}", env!("CARGO_PKG_VERSION")));
    let platforms = spec["platforms"].as_array().unwrap();
    assert!(!platforms.is_empty());
    for platform in platforms {
        assert_eq!(platform["bin"], "kubectl-procshot");
        assert_eq!(platform["files"][0]["from"], "kubectl-procshot");
        let uri = platform["uri"].as_str().unwrap();
        assert!(
            uri.contains(&format!("/v{}/", env!("CARGO_PKG_VERSION"))),
            "{uri}"
        );
        assert_eq!(platform["sha256"].as_str().unwrap().len(), 64);
    }
    assert!(
        spec["shortDescription"].as_str().unwrap().len() <= 80,
        "krew's limit"
    );
}
