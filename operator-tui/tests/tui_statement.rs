//! The app's "reproduced" PCR column from a builders' statement: accepted only at the threshold
//! of pinned builder keys, and named by its signers.

mod pgp_support;

use operator_tui::tui::runtime::{TuiArgs, config};
use pgp_support::GpgHome;

const B1: &str = "Builder One <one@builders.example>";
const B2: &str = "Builder Two <two@builders.example>";

#[test]
fn statement_pcrs_fill_the_reproduced_column_at_threshold() {
    let gpg = GpgHome::new();
    gpg.generate(B1, "nistp256");
    gpg.generate(B2, "ed25519");
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    std::fs::create_dir(&keyring).unwrap();
    gpg.export(B1, &keyring.join("one.asc"));
    gpg.export(B2, &keyring.join("two.asc"));
    let statement = dir.path().join("statement.json");
    std::fs::write(
        &statement,
        format!(
            "{{\"image\": \"payments-enclave\", \"version\": \"1.4.2\", \"pcrs\": {{\"PCR0\": \"{}\", \"PCR1\": \"{}\", \"PCR2\": \"{}\"}}}}\n",
            "a1".repeat(48),
            "b2".repeat(48),
            "c3".repeat(48)
        ),
    )
    .unwrap();
    let sig1 = dir.path().join("one.sig");
    let sig2 = dir.path().join("two.sig");
    gpg.detach_sign(B1, &statement, &sig1, &[]);
    gpg.detach_sign(B2, &statement, &sig2, &[]);

    let mut args = TuiArgs {
        at: "now".into(),
        dir: Some(dir.path().into()),
        reproduce: operator_tui::cli::trust::ReproduceArgs {
            statement: Some(statement.clone()),
            statement_sig: vec![sig1.clone(), sig2],
            keyring: Some(keyring.clone()),
            statement_threshold: 2,
            eif: None,
        },
        max_age_secs: 3600,
        ..TuiArgs::default()
    };
    let cfg = config(&args, None).unwrap();
    let r = cfg.reproduced.expect("reproduced PCRs");
    assert_eq!(r.pcrs[0].0, [0xa1; 48]);
    assert_eq!(r.pcrs[2].0, [0xc3; 48]);
    let operator_tui::member::review::ReproducedFrom::Builders {
        names,
        fingerprints,
    } = r.source
    else {
        panic!("not from builders: {:?}", r.source);
    };
    let by = names.join(", ");
    assert!(
        by.contains("Builder One") && by.contains("Builder Two"),
        "{by}"
    );
    assert_eq!(fingerprints.len(), 2);

    // One signature does not meet a threshold of two: the app refuses to start with it.
    args.reproduce.statement_sig = vec![sig1];
    let err = config(&args, None).expect_err("below threshold");
    assert!(err.contains("statement"), "{err}");
}
