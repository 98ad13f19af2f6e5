//! The README's main command, `infra demo`: the embedded accounting example booted as
//! two lab hosts, applied, and a failover drill (VIP moves, the standby is promoted,
//! a replicated row survives). Lab only (INFRA_LAB_TESTS=1).

use std::process::Command;

#[test]
fn demo_runs_the_failover_drill() {
    if !crate::lab_tests(
        "demo_runs_the_failover_drill",
        "root and network namespaces",
    ) {
        return;
    }
    let infra = env!("CARGO_BIN_EXE_infra");
    let out = crate::deadline::output_within(
        Command::new(infra).arg("demo"),
        crate::apply_e2e::INFRA_LIMIT,
        "infra demo",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let down = Command::new(infra)
        .args(["lab", "down", "--lab", "accounting"])
        .output();
    assert!(
        out.status.success(),
        "infra demo failed:\n{stdout}\n{stderr}"
    );
    for expected in [
        "VIP 192.0.2.10 of failover group `office` is on alpha",
        "streaming",
        "VIP 192.0.2.10 moved to beta",
        "PostgreSQL on beta promoted to primary",
        "nothing replicated was lost",
        "writes acknowledged through the VIP",
        "alpha is back as a backup",
        "PostgreSQL on alpha rejoined as a standby of beta by itself",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` not in the demo's output:\n{stdout}\n{stderr}"
        );
    }
    // The drill's writer: asynchronous replication may lose the last acknowledged
    // write or so of a power cut, never more than a second's worth.
    let line = stdout
        .lines()
        .find(|l| l.contains("writes acknowledged through the VIP"))
        .unwrap_or_default();
    let lost: u64 = line
        .split(", ")
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lost count in `{line}`"));
    assert!(
        lost <= 300,
        "{lost} acknowledged writes lost in a power cut:\n{stdout}"
    );
    // A first deployment waits for its primary as designed: nothing on either
    // host reads as a failure.
    assert!(
        !stdout.contains("failed and will be retried") && !stdout.contains("warning:"),
        "a warning in the demo's apply:\n{stdout}"
    );
    assert!(
        down.is_ok_and(|o| o.status.success()),
        "infra lab down failed"
    );
}
