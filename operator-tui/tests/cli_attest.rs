//! Golden tests of `tessera attest verify` and `tessera pcrs`: exit codes, stdout, stderr.

use std::process::{Command, Output};

use serde_json::{Value, json};

const NITRO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/vectors/nitro");
const EIF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/vectors/eif");
const ZERO: &str = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn synthetic(name: &str) -> String {
    format!("{NITRO}/synthetic/{name}")
}

fn synthetic_root() -> String {
    format!("{NITRO}/synthetic/synthetic_root.pem")
}

#[test]
fn valid_synthetic_document_json_report() {
    let o = tessera(&[
        "attest",
        "verify",
        &synthetic("SYNTH_valid.cbor"),
        "--root",
        &synthetic_root(),
        "--at",
        "doc",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut pcrs = serde_json::Map::new();
    for i in 0..16 {
        pcrs.insert(i.to_string(), ZERO.into());
    }
    pcrs.insert("0".into(), "f9ef9e90faeaa081ecc89e9b42d9ae3cd66e614dbd6e291c26dcab57cf843f0da7aa6825174426a0ac5dfa566b718691".into());
    pcrs.insert("1".into(), "82a2cfa214294146a721ad48b3e7de920129c3aa41d5d022d443ada80b8593a9f8192a489bcf07eb820eb497698dbc15".into());
    pcrs.insert("2".into(), "ca31eca09bb3daca85dcd224ccd52dfe172e8a194337dd3b1cdb256a459c2e27038a6945ac39de66cad1b214153efaff".into());
    pcrs.insert("3".into(), "199be9e34e622681f09de229a86dc0d4647511e9a3479b157c942d9dcf360baaf4a59ef184218302139d30e519c01858".into());
    pcrs.insert("4".into(), "baa47e59f5ab7e026ffe0b85cf86e5a34494da6fb5a10e91eeb7ab839764a0d280a3ce5fd3dfc9c1225b75aa7e4820ca".into());
    pcrs.insert("8".into(), "7e81f92c8d99920e55e78a9257551b8c41e2f71b9ce8012de6c134e4bfe183b34fff3eae0c1b709bec887b8869e3b308".into());
    let cert = |subject: &str, nb: &str, na: &str| json!({"subject": subject, "not_before": nb, "not_after": na});
    let expected = json!({
        "valid": true,
        "error": null,
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "timestamp": "2025-01-01T12:00:00Z",
        "digest": "SHA384",
        "pcrs": pcrs,
        "user_data": "73796e74686574696320757365722064617461",
        "public_key": null,
        "nonce": "0101010101010101010101010101010101010101",
        "certificates": [
            cert("C=US, O=NOT-Amazon, OU=TEST, CN=synthetic-root.nitro-enclaves", "2024-01-02T12:00:00Z", "2034-12-30T12:00:00Z"),
            cert("C=US, O=NOT-Amazon, OU=TEST, CN=i1.synthetic.nitro-enclaves", "2024-12-27T12:00:00Z", "2025-01-16T12:00:00Z"),
            cert("C=US, O=NOT-Amazon, OU=TEST, CN=i2.zonal.synthetic.nitro-enclaves", "2024-12-31T12:00:00Z", "2025-01-06T12:00:00Z"),
            cert("C=US, O=NOT-Amazon, OU=TEST, CN=i-0123456789abcdef0.synthetic.nitro-enclaves", "2025-01-01T06:00:00Z", "2025-01-02T06:00:00Z"),
            cert("C=US, O=NOT-Amazon, OU=TEST, CN=i-0123456789abcdef0-enc0123456789abcdef.synthetic", "2025-01-01T11:59:00Z", "2025-01-01T15:00:00Z"),
        ],
        "root_sha256": "75ab9b173b58cc8abe2d104bf269927ae5ea1376b521a29bbcfa5634d0e80172",
        "trust": "DEV",
    });
    assert_eq!(report, expected);
}

#[test]
fn policy_expectations_are_enforced() {
    let base = ["attest", "verify"];
    let doc = synthetic("SYNTH_valid.cbor");
    let root = synthetic_root();
    let pcr0 = "0=f9ef9e90faeaa081ecc89e9b42d9ae3cd66e614dbd6e291c26dcab57cf843f0da7aa6825174426a0ac5dfa566b718691";
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend([doc.as_str(), "--root", root.as_str(), "--at", "doc"]);
        args.extend(extra);
        tessera(&args)
    };
    let ok = run(&[
        "--expect-pcr",
        pcr0,
        "--expect-user-data",
        "73796e74686574696320757365722064617461",
        "--max-age",
        "5m",
    ]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));

    let wrong_pcr = run(&["--expect-pcr", &format!("2={ZERO}")]);
    assert_eq!(code(&wrong_pcr), 1);
    assert!(
        stderr(&wrong_pcr).contains("PCR2 is ca31eca0"),
        "{}",
        stderr(&wrong_pcr)
    );

    let wrong_key = run(&["--expect-public-key", "00", "--json"]);
    assert_eq!(code(&wrong_key), 1);
    let report: Value = serde_json::from_str(&stdout(&wrong_key)).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["error"], "public_key is absent, expected 00");
    assert_eq!(
        report["module_id"],
        "i-0123456789abcdef0-enc0123456789abcdef"
    );

    let old = tessera(&[
        "attest",
        "verify",
        &doc,
        "--root",
        &root,
        "--at",
        "2025-01-01T12:10:00Z",
        "--max-age",
        "5m",
    ]);
    assert_eq!(code(&old), 1);
    assert!(
        stderr(&old).contains("document is 600 s old"),
        "{}",
        stderr(&old)
    );
}

#[test]
fn real_debug_document_needs_allow_debug() {
    let doc = format!("{NITRO}/real/aws-samples-iot-validate_att_doc_sample.cbor");
    let refused = tessera(&["attest", "verify", &doc, "--at", "doc", "--json"]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("debug mode"),
        "{}",
        stderr(&refused)
    );
    let report: Value = serde_json::from_str(&stdout(&refused)).unwrap();
    assert_eq!(report["valid"], false);
    assert!(report["error"].as_str().unwrap().contains("debug mode"));
    assert_eq!(
        report["root_sha256"],
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    );

    let allowed = tessera(&["attest", "verify", &doc, "--at", "doc", "--allow-debug"]);
    assert_eq!(code(&allowed), 0, "{}", stderr(&allowed));
    let out = stdout(&allowed);
    assert!(
        out.starts_with("VALID attestation document, checked at 2023-03-28T11:56:00.937Z\n"),
        "{out}"
    );
    assert!(out.contains("debug mode  YES"), "{out}");
}

#[test]
fn real_document_is_refused_today_as_expired() {
    let doc = format!("{NITRO}/real/evervault_valid-attestation-doc-ga.cbor");
    let o = tessera(&[
        "attest",
        "verify",
        &doc,
        "--allow-debug",
        "--at",
        "2026-11-21T12:00:00Z",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("expired at"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(validation time 2026-11-21T12:00:00Z)"),
        "{}",
        stderr(&o)
    );
    let now = tessera(&["attest", "verify", &doc, "--allow-debug"]);
    assert_eq!(code(&now), 1);
    assert!(stderr(&now).contains("expired at"));
}

#[test]
fn invalid_documents_exit_1_with_the_reason() {
    let o = tessera(&[
        "attest",
        "verify",
        &synthetic("SYNTH_bad_signature_bit_flipped.cbor"),
        "--root",
        &synthetic_root(),
        "--at",
        "doc",
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("COSE signature invalid"));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["module_id"], Value::Null);
    assert_eq!(report["certificates"], Value::Null);

    let synthetic_with_aws_root = tessera(&[
        "attest",
        "verify",
        &synthetic("SYNTH_valid.cbor"),
        "--at",
        "doc",
    ]);
    assert_eq!(code(&synthetic_with_aws_root), 1);
    assert!(stderr(&synthetic_with_aws_root).contains("cabundle[0] is not the pinned root"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(
        code(&tessera(&["attest", "verify", "/nonexistent.cbor"])),
        2
    );
    let doc = synthetic("SYNTH_valid.cbor");
    assert_eq!(
        code(&tessera(&["attest", "verify", &doc, "--at", "yesterday"])),
        2
    );
    assert_eq!(
        code(&tessera(&[
            "attest",
            "verify",
            &doc,
            "--expect-pcr",
            "32=00"
        ])),
        2
    );
    assert_eq!(
        code(&tessera(&[
            "attest",
            "verify",
            &doc,
            "--max-age",
            "5 weeks"
        ])),
        2
    );
    assert_eq!(
        code(&tessera(&["attest", "verify", &doc, "--root", &doc])),
        2
    );
    assert_eq!(code(&tessera(&["pcrs"])), 2);
    assert_eq!(code(&tessera(&["pcrs", "/nonexistent.eif"])), 2);
}

#[test]
fn pcrs_of_eif_role_and_instance() {
    let o = tessera(&["pcrs", &format!("{EIF}/signed.eif"), "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stdout(&o),
        r#"{
  "Measurements": {
    "HashAlgorithm": "Sha384 { ... }",
    "PCR0": "bbae9d6714cb4911c2bc7fb22cd1d16bf7112f858a2600f9309f3ceec768eda50ef0f45f2c6ad180335f9f2a7f538a48",
    "PCR1": "3f5a838fba8a8dcac0b7e3aba218509f1e6607867fe2004d188c84d5b23a9b02816e55a55f1603ee6a70d27d3e4c75c0",
    "PCR2": "02291418a21865a8eca5bf9a19fe74d2f687134caa531ba107a9123aa63f4f79f7926d57e4ca133b49271030396aa565",
    "PCR8": "8e2ba9002898bc4db1148195b25bbaf6a8007c8c1872f3355d253303b0c4656fa0663077938931472ec38e5f4045b232"
  }
}
"#
    );
    let plain = tessera(&["pcrs", &format!("{EIF}/unsigned.eif")]);
    assert_eq!(
        stdout(&plain),
        "PCR0 bbae9d6714cb4911c2bc7fb22cd1d16bf7112f858a2600f9309f3ceec768eda50ef0f45f2c6ad180335f9f2a7f538a48\n\
         PCR1 3f5a838fba8a8dcac0b7e3aba218509f1e6607867fe2004d188c84d5b23a9b02816e55a55f1603ee6a70d27d3e4c75c0\n\
         PCR2 02291418a21865a8eca5bf9a19fe74d2f687134caa531ba107a9123aa63f4f79f7926d57e4ca133b49271030396aa565\n"
    );
    let pcr3 = tessera(&[
        "pcrs",
        "--role-arn",
        "arn:aws:iam::123456789012:role/Webserver",
    ]);
    assert_eq!(code(&pcr3), 0);
    assert!(stdout(&pcr3).starts_with("78fce75d"));
    assert_eq!(stdout(&pcr3).trim().len(), 96);
    let pcr4 = tessera(&["pcrs", "--instance-id", "i-0123456789abcdef0"]);
    assert_eq!(code(&pcr4), 0);
    assert_eq!(stdout(&pcr4).trim().len(), 96);
    let bad = tessera(&["pcrs", "--role-arn", "not-an-arn"]);
    assert_eq!(code(&bad), 1);
    assert!(stderr(&bad).contains("not an IAM role ARN"));
    let corrupt = tessera(&["pcrs", &format!("{NITRO}/aws_nitro_root_g1.pem")]);
    assert_eq!(code(&corrupt), 1);
}

/// `attest audit` over a folder: every real document verifies at its own time (debug ones with
/// --allow-debug), intermediates checked once are kept, and one refused document makes the exit
/// status 1 with its reason in the table and the JSON.
#[test]
fn audit_a_folder_of_documents() {
    let real = format!("{NITRO}/real");
    let o = tessera(&["attest", "audit", &real, "--at", "doc", "--allow-debug"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("17 documents: 17 valid, 0 refused"), "{out}");
    assert!(
        out.contains("intermediate links checked once and kept"),
        "{out}"
    );

    // Without --allow-debug the debug documents are refused, and the run fails.
    let o = tessera(&["attest", "audit", &real, "--at", "doc", "--json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(report["failed"].as_u64().unwrap() >= 1, "{report}");
    let refused = report["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["valid"] == false)
        .unwrap();
    assert!(
        refused["error"].as_str().unwrap().contains("debug mode"),
        "{refused}"
    );

    // A PCR expectation none of them meet: every line refused.
    let o = tessera(&[
        "attest",
        "audit",
        &real,
        "--at",
        "doc",
        "--allow-debug",
        "--expect-pcr",
        &format!("0={}", "11".repeat(48)),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("17 refused"), "{}", stdout(&o));

    // A missing folder is a usage error that names it.
    let o = tessera(&["attest", "audit", "/nonexistent/docs"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("/nonexistent/docs"), "{}", stderr(&o));
}
