//! `kez-server up --cluster 3` under load while kill -9 takes out, in turn, a nats-server,
//! service workers, the KV/stream leader and the gateway (the short profile of
//! `kez_testkit::fault`; `kez-loadtest fault` runs the long one). Nothing acknowledged may be
//! lost, nothing stored twice, nothing half-applied, and clients see no error they would not
//! retry (PROTOCOL.md §9.7).

// A failed unwrap is a failed test, with the location in the message.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use kez_testkit::fault::{Profile, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keeps_every_acknowledged_write_through_four_kill_9_faults() {
    let report = run(Path::new(env!("CARGO_BIN_EXE_kez-server")), &Profile::short()).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(report.problems.is_empty(), "problems: {:#?}", report.problems);
    assert_eq!(report.lost.total(), 0);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.client_errors, 0);
    assert_eq!(report.faults.len(), 4);
    for f in &report.faults {
        assert!(!f.killed.is_empty(), "{} killed nothing", f.fault);
    }
}
