//! Links the `bakehouse` command as a position-dependent executable: a PIE binary of this size
//! spends most of a short command's start-up applying ~276k relocations at load time (measured
//! in docs/performance.md). The trade-off is no address-space randomisation for the CLI itself;
//! the Lambda bootstraps are built separately and stay PIE.
fn main() {
    println!("cargo:rustc-link-arg-bin=bakehouse=-no-pie");
}
