//! The test node's pod network: each pod that is not `hostNetwork` gets its own network
//! namespace (containerd creates it) with only `lo`, brought up by the CNI `loopback`
//! plugin that containerd's CRI plugin always runs first. containerd 1.6 also insists on
//! an address on the pod's `eth0` in the result of the configured network, so that
//! network is one plugin of the test bed's own, `procshot-testbed-cni`, which reports
//! `127.0.0.1/8` on `eth0` and creates no interface, address or route: no traffic can
//! leave a pod, and nothing in a pod can reach anything but its own 127.0.0.1.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::Error;

/// The CNI version of the configuration and results.
pub const CNI_VERSION: &str = "1.0.0";
/// The plugin's executable name in the CNI bin directory.
pub const PLUGIN: &str = "procshot-testbed-cni";
/// Where Debian's `containernetworking-plugins` installs `loopback`.
pub const DEBIAN_PLUGINS: &str = "/usr/lib/cni";

/// Writes the network configuration into `conf_dir` and the plugins (`loopback` from
/// Debian's package, `plugin`, the test bed's own) into `bin_dir`.
pub fn install(conf_dir: &Path, bin_dir: &Path, plugin: &Path) -> Result<(), Error> {
    let loopback = Path::new(DEBIAN_PLUGINS).join("loopback");
    if !loopback.exists() {
        return Err(Error::Program {
            program: loopback.display().to_string(),
            message: "missing: apt-get install containernetworking-plugins".into(),
        });
    }
    for dir in [conf_dir, bin_dir] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let link = |from: &Path, name: &str| {
        let to = bin_dir.join(name);
        std::os::unix::fs::symlink(from, &to).map_err(|e| Error::io("linking", &to, e))
    };
    link(&loopback, "loopback")?;
    link(plugin, PLUGIN)?;
    let conf = json!({
        "cniVersion": CNI_VERSION,
        "name": "procshot-testbed",
        "plugins": [{"type": PLUGIN}],
    });
    let path = conf_dir.join("10-procshot-testbed.conflist");
    std::fs::write(&path, serde_json::to_vec_pretty(&conf).expect("JSON"))
        .map_err(|e| Error::io("writing", &path, e))
}

/// What the plugin prints for a CNI command (`CNI_COMMAND`), given the pod's network
/// namespace (`CNI_NETNS`) and interface name (`CNI_IFNAME`): `Ok(None)` when it prints
/// nothing, `Err` with the CNI error object.
pub fn answer(command: &str, netns: &str, ifname: &str) -> Result<Option<Value>, Value> {
    match command {
        "ADD" => Ok(Some(json!({
            "cniVersion": CNI_VERSION,
            "interfaces": [{"name": ifname, "sandbox": netns}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}],
        }))),
        "DEL" | "CHECK" | "GC" | "STATUS" => Ok(None),
        "VERSION" => Ok(Some(json!({
            "cniVersion": CNI_VERSION,
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"],
        }))),
        other => Err(json!({
            "cniVersion": CNI_VERSION,
            "code": 4,
            "msg": format!("procshot-testbed-cni does not know CNI_COMMAND {other:?}"),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_reports_an_address_on_the_interface_without_creating_one() {
        let result = answer("ADD", "/run/netns/cni-1", "eth0").unwrap().unwrap();
        assert_eq!(result["interfaces"][0]["name"], "eth0");
        assert_eq!(result["interfaces"][0]["sandbox"], "/run/netns/cni-1");
        assert_eq!(result["ips"][0]["address"], "127.0.0.1/8");
        assert_eq!(result["ips"][0]["interface"], 0);
    }

    #[test]
    fn delete_prints_nothing_and_unknown_commands_are_errors() {
        assert_eq!(answer("DEL", "", "eth0"), Ok(None));
        let error = answer("FROB", "", "eth0").unwrap_err();
        assert_eq!(error["code"], 4);
    }
}
