//! The fetcher as the enclave's pivot app, end to end on real processes: a dev enclave
//! provisioned by a ceremony pivots to `tessera-fetcher` with the manifest's arguments (the
//! egress proxy, the allow-list, the pinned test CA) and ingress port; a fetch through the real
//! `tessera-egress` proxy comes back signed by the ceremony's quorum key, also when asked with
//! `tessera fetch get` over the relay's app bridge; `tessera fetch verify` accepts the proof
//! offline against the manifest and refuses it altered.

mod support;

#[path = "../../fetcher/tests/support/mod.rs"]
mod fetch_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fetch_support::{HttpsServer, TestCa, default_routes, start_egress};
use support::{Ceremony, STEP};
use tessera_core::bytes::Hash32;
use tessera_core::cbor;
use tessera_core::fetch::FetchProof;
use tessera_core::transport::Address;
use tessera_fetcher::app::{FetchAppRequest, FetchAppResponse, call};

const INGRESS_PORT: u32 = 5005;

/// Calls the app at `addr` once its socket answers (the pivot starts after provisioning).
fn call_when_up(addr: &Address, request: &FetchAppRequest) -> FetchAppResponse {
    let until = Instant::now() + STEP;
    loop {
        match call(addr, request, STEP) {
            Ok(r) => return r,
            Err(e) if Instant::now() < until => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the pivot fetcher never answered at {addr}: {e}"),
        }
    }
}

/// A relay with the app bridge on; killed when dropped. Its bridge address.
struct Bridge(std::process::Child, String);

impl Bridge {
    fn start(enclave: &Address) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(support::relay_binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--app-listen",
                "127.0.0.1:0",
                "--enclave",
            ])
            .arg(enclave.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tessera-relay");
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("tessera-relay: app bridge on tcp://") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(STEP)
            .expect("the relay announces its app bridge");
        Self(child, addr)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tessera(args: &[&str]) -> std::process::Output {
    Command::new(fetch_support::tessera_binary())
        .args(args)
        .env("TESSERA_TRANSCRIPT", "/dev/null")
        .output()
        .expect("run tessera")
}

#[test]
fn the_pivot_fetcher_signs_with_the_quorum_key_of_the_ceremony() {
    let apps = tempfile::tempdir().unwrap();
    // A copy, so a rebuild elsewhere cannot change the binary under the manifest's hash.
    let fetcher = apps.path().join("tessera-fetcher");
    std::fs::copy(fetch_support::binary("tessera-fetcher"), &fetcher).unwrap();
    let sha = Hash32::sha256(&std::fs::read(&fetcher).unwrap());
    let ca = TestCa::new("Tessera pivot fetch test CA");
    let server = HttpsServer::start(&ca, &["localhost"], default_routes());
    let dest = format!("localhost:{}", server.port());
    let (_egress, proxy) = start_egress(apps.path(), std::slice::from_ref(&dest), &[]);

    let mut c = Ceremony::with_pivot(3, 2, Some(&fetcher), sha);
    let mut m = c.manifest().clone();
    m.pivot.args = vec![
        "--proxy".into(),
        proxy.to_string(),
        "--allow".into(),
        dest.clone(),
        "--extra-root".into(),
        ca.base64(),
    ];
    m.pivot.ingress_port = Some(INGRESS_PORT);
    c.envelope = c.approved(m);
    c.boot();
    c.complete();

    let ingress = c.enclave.addr.app_ingress(INGRESS_PORT);
    let url = format!("https://localhost:{}/hello", server.port());
    let resp = call_when_up(
        &ingress,
        &FetchAppRequest::Fetch {
            url: url.clone(),
            headers: vec![],
        },
    );
    let FetchAppResponse::Fetched { proof } = resp else {
        panic!("expected a proof, got {resp:?}");
    };
    let quorum = c.manifest().namespace.quorum_public_key;
    let record = proof
        .verify(&quorum)
        .expect("signed by the ceremony's quorum key");
    assert_eq!(record.url, url);
    assert_eq!(record.body.as_slice(), b"hello from the test server");

    // A destination the manifest does not allow is refused inside the enclave.
    let resp = call_when_up(
        &ingress,
        &FetchAppRequest::Fetch {
            url: "https://example.com/".into(),
            headers: vec![],
        },
    );
    assert!(
        matches!(&resp, FetchAppResponse::Error { kind, .. } if kind == "not-allowed"),
        "{resp:?}"
    );

    // Offline, with the CLI: the proof verifies against the manifest, in text and JSON.
    let dir = apps.path();
    let proof_path = dir.join("hello.proof");
    let manifest_path = dir.join("manifest.cbor");
    std::fs::write(&proof_path, proof.encode()).unwrap();
    std::fs::write(&manifest_path, cbor::encode(&c.envelope)).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let out = tessera(&[
        "fetch",
        "verify",
        &path(&proof_path),
        "--manifest",
        &path(&manifest_path),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("url          {url}")), "{text}");
    assert!(text.contains("status       200"), "{text}");
    assert!(text.contains("names      localhost"), "{text}");
    assert!(text.contains(&quorum.signing.fingerprint()), "{text}");
    let out = tessera(&[
        "fetch",
        "verify",
        &path(&proof_path),
        "--manifest",
        &path(&manifest_path),
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["body_text"], "hello from the test server");
    assert_eq!(v["certificate"]["names"][0], "localhost");

    // Altered (another body with its hash recomputed): refused, exit 1, naming the key.
    let mut forged: FetchProof = proof.clone();
    forged.record.body = serde_bytes::ByteBuf::from(b"hello from the host".to_vec());
    forged.record.body_sha256 = Hash32::sha256(&forged.record.body);
    let forged_path = dir.join("forged.proof");
    std::fs::write(&forged_path, forged.encode()).unwrap();
    let out = tessera(&[
        "fetch",
        "verify",
        &path(&forged_path),
        "--manifest",
        &path(&manifest_path),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not verify with quorum key"), "{err}");
    assert!(out.stdout.is_empty());

    // Through the relay's app bridge, as a client outside the host would ask.
    let bridge = Bridge::start(&c.enclave.addr);
    let got = dir.join("bridged.proof");
    let out = tessera(&[
        "fetch",
        "get",
        "--bridge",
        &bridge.1,
        "--manifest",
        &path(&manifest_path),
        &url,
        "--out",
        &path(&got),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("status       200"), "{text}");
    let bridged = FetchProof::decode(&std::fs::read(&got).unwrap()).unwrap();
    assert_eq!(
        bridged.verify(&quorum).unwrap().body.as_slice(),
        b"hello from the test server"
    );
    let out = tessera(&[
        "fetch",
        "get",
        "--bridge",
        &bridge.1,
        "--manifest",
        &path(&manifest_path),
        "https://example.com/",
        "--out",
        &path(&dir.join("refused.proof")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not-allowed") && err.contains("nothing was signed"),
        "{err}"
    );
    assert!(!dir.join("refused.proof").exists());
}
