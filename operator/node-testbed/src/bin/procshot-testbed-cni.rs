//! `procshot-testbed-cni`: the CNI plugin of the test node's pod network (see the
//! library's `cni` module). It reads the network configuration on stdin (and needs nothing
//! from it), answers from `CNI_COMMAND`, `CNI_NETNS` and `CNI_IFNAME`, and changes nothing
//! on the host or in the pod.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut config = Vec::new();
    // The configuration is not needed, but a CNI plugin must consume it.
    let _ = std::io::stdin().read_to_end(&mut config);
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    match procshot_node_testbed::cni::answer(
        &var("CNI_COMMAND"),
        &var("CNI_NETNS"),
        &var("CNI_IFNAME"),
    ) {
        Ok(Some(result)) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            println!("{error}");
            ExitCode::FAILURE
        }
    }
}
