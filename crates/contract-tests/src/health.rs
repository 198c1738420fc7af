//! The [`HealthProbe`] contract, for a dependency that is up.

use domain::health::HealthProbe;

pub async fn a_reachable_dependency_checks_ok(probe: &impl HealthProbe) {
    probe.check().await.expect("a reachable dependency is ok");
}

pub async fn the_check_name_is_stable_and_non_empty(probe: &impl HealthProbe) {
    let name = probe.name();
    assert!(!name.is_empty());
    assert!(
        name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{name}"
    );
    probe.check().await.expect("check");
    assert_eq!(probe.name(), name);
}
