//! End to end on real processes: a local HTTPS server whose test CA the fetcher pins, the real
//! `tessera-egress` proxy and the `tessera-fetcher` app on unix sockets. A fetch comes back as a
//! proof that verifies offline with the quorum public key; a hostile proxy (routing elsewhere,
//! flipping a byte, truncating, stalling) or a destination off the allow-list gets an error and
//! never a signature.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{
    HostileProxy, HttpsServer, Lie, STEP, TestCa, default_routes, pattern, start_egress,
    start_fetcher,
};
use tessera_core::bytes::Hash32;
use tessera_core::fetch::{FetchProof, HeaderField};
use tessera_core::quorum::QuorumSeed;
use tessera_core::transport::Address;
use tessera_fetcher::app::{FetchAppRequest, FetchAppResponse, call};

fn fetch(app: &Address, url: &str) -> FetchAppResponse {
    call(
        app,
        &FetchAppRequest::Fetch {
            url: url.to_owned(),
            headers: vec![HeaderField {
                name: "accept".into(),
                value: "*/*".into(),
            }],
        },
        STEP * 2,
    )
    .expect("the fetcher answers")
}

fn proof(resp: FetchAppResponse) -> FetchProof {
    match resp {
        FetchAppResponse::Fetched { proof } => proof,
        other => panic!("expected a proof, got {other:?}"),
    }
}

/// The fetch failed with `kind`, and the answer carries no proof.
fn refused(resp: &FetchAppResponse, kind: &str, needle: &str) {
    match resp {
        FetchAppResponse::Error { kind: k, message } => {
            assert_eq!(k, kind, "{message}");
            assert!(
                message.to_lowercase().contains(&needle.to_lowercase()),
                "{message:?} does not mention {needle:?}"
            );
        }
        other => panic!("expected a refusal ({kind}), got {other:?}"),
    }
}

#[test]
fn a_fetch_through_the_real_proxy_is_signed_and_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera fetch test CA");
    let server = HttpsServer::start(&ca, &["localhost", "127.0.0.1"], default_routes());
    let dest = format!("localhost:{}", server.port());
    let (_egress, proxy) = start_egress(dir.path(), std::slice::from_ref(&dest), &[]);
    let seed = QuorumSeed::generate();
    let (_app, app) = start_fetcher(
        dir.path(),
        "fetcher",
        &proxy,
        std::slice::from_ref(&dest),
        &ca,
        &seed,
        &[],
    );
    let quorum = seed.public_key();

    let url = format!("https://localhost:{}/hello", server.port());
    let p = proof(fetch(&app, &url));
    let r = p
        .verify(&quorum)
        .expect("the proof verifies with the quorum key");
    assert_eq!(r.url, url);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_slice(), b"hello from the test server");
    assert_eq!(r.body_sha256, Hash32::sha256(b"hello from the test server"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("etag"), Some("\"t1\""));
    assert_eq!(r.tls_version, "TLSv1.3");
    assert!(r.cipher_suite.starts_with("TLS13_"), "{}", r.cipher_suite);
    assert_eq!(r.certificates.len(), 2, "the chain as the server sent it");
    assert_eq!(r.certificates[1].as_slice(), ca.der.as_ref());
    assert_eq!(r.request.method, "GET");
    assert_eq!(
        r.request.headers[0].value,
        format!("localhost:{}", server.port())
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(r.fetched_at <= now && r.fetched_at + 120 > now);

    // The proof stands on its own bytes: decoded again, it verifies; under another key it
    // does not.
    let bytes = p.encode();
    FetchProof::decode(&bytes).unwrap().verify(&quorum).unwrap();
    assert!(p.verify(&QuorumSeed::generate().public_key()).is_err());

    // 100 KB by Content-Length and a chunked body arrive whole.
    let big = proof(fetch(
        &app,
        &format!("https://localhost:{}/data100k", server.port()),
    ));
    assert_eq!(
        big.verify(&quorum).unwrap().body.as_slice(),
        pattern(100 * 1024)
    );
    let chunked = proof(fetch(
        &app,
        &format!("https://localhost:{}/chunked", server.port()),
    ));
    assert_eq!(
        chunked.verify(&quorum).unwrap().body.as_slice(),
        pattern(30_000)
    );
    // A 404 is what the server returned: signed as such.
    let missing = proof(fetch(
        &app,
        &format!("https://localhost:{}/nope", server.port()),
    ));
    assert_eq!(missing.verify(&quorum).unwrap().status, 404);

    // Over the body limit: refused, nothing signed.
    refused(
        &fetch(&app, &format!("https://localhost:{}/big", server.port())),
        "http",
        "limit",
    );
    // A plain-http or malformed URL never leaves.
    refused(&fetch(&app, "http://localhost/"), "url", "https");
}

#[test]
fn destinations_off_either_allow_list_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera fetch test CA");
    let server = HttpsServer::start(&ca, &["localhost"], default_routes());
    let allowed = format!("localhost:{}", server.port());
    let hostile = HostileProxy::start(dir.path(), Lie::None);
    let seed = QuorumSeed::generate();
    let (_app, app) = start_fetcher(
        dir.path(),
        "fetcher",
        &hostile.addr,
        std::slice::from_ref(&allowed),
        &ca,
        &seed,
        &[],
    );
    // Refused inside, before any byte leaves: the proxy never even sees a channel.
    let other = format!("https://127.0.0.1:{}/hello", server.port());
    refused(&fetch(&app, &other), "not-allowed", "allow-list");
    refused(
        &fetch(&app, "https://example.com/"),
        "not-allowed",
        "nothing was sent",
    );
    assert_eq!(hostile.channels.load(Ordering::SeqCst), 0);
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    // The same fetcher does reach an allowed destination through this proxy (the control).
    let url = format!("https://localhost:{}/hello", server.port());
    proof(fetch(&app, &url)).verify(&seed.public_key()).unwrap();
    assert_eq!(hostile.channels.load(Ordering::SeqCst), 1);

    // The real proxy enforces its own list too: a fetcher allowed more than the host permits
    // is refused by the proxy, which never connects.
    let (_egress, proxy) = start_egress(dir.path(), &["localhost:1".to_owned()], &[]);
    let (_app2, app2) = start_fetcher(
        dir.path(),
        "fetcher2",
        &proxy,
        std::slice::from_ref(&allowed),
        &ca,
        &seed,
        &[],
    );
    refused(&fetch(&app2, &url), "proxy", "allow-list");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

/// A fetcher behind a proxy that lies with `lie`, for the server at `server`.
fn behind_hostile(
    dir: &std::path::Path,
    ca: &TestCa,
    server: &HttpsServer,
    lie: Lie,
    seed: &QuorumSeed,
) -> (HostileProxy, support::Proc, Address) {
    let hostile = HostileProxy::start(dir, lie);
    let allowed = format!("localhost:{}", server.port());
    let (proc, app) = start_fetcher(
        dir,
        "fetcher",
        &hostile.addr,
        std::slice::from_ref(&allowed),
        ca,
        seed,
        &["--step-timeout", "2"],
    );
    (hostile, proc, app)
}

#[test]
fn a_proxy_that_routes_to_another_server_meets_a_refused_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera fetch test CA");
    let server = HttpsServer::start(&ca, &["localhost"], default_routes());
    // Another server with a certificate from the same pinned CA, for another name, and one
    // with a certificate for the right name from a CA nobody pinned.
    let elsewhere = HttpsServer::start(&ca, &["other.test"], default_routes());
    let rogue_ca = TestCa::new("Rogue CA");
    let rogue = HttpsServer::start(&rogue_ca, &["localhost"], default_routes());
    let seed = QuorumSeed::generate();
    let url = format!("https://localhost:{}/hello", server.port());
    for (target, needle) in [
        (elsewhere.port(), "not valid for name"),
        (rogue.port(), "UnknownIssuer"),
    ] {
        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        let (hostile, fetcher, app) =
            behind_hostile(sub.path(), &ca, &server, Lie::RouteTo(target), &seed);
        let resp = fetch(&app, &url);
        refused(&resp, "tls", needle);
        assert_eq!(hostile.opened.lock().unwrap().len(), 1);
        assert!(fetcher.log_text().contains("nothing signed"));
    }
    assert_eq!(
        elsewhere.requests.load(Ordering::SeqCst),
        0,
        "no request after a bad certificate"
    );
    assert_eq!(rogue.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn a_proxy_that_flips_a_byte_is_caught_by_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera fetch test CA");
    let server = HttpsServer::start(&ca, &["localhost"], default_routes());
    let seed = QuorumSeed::generate();
    let url = format!("https://localhost:{}/data100k", server.port());
    // One bit in the middle of the body, and one in the handshake.
    for at in [50_000, 200] {
        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        let (_h, _f, app) = behind_hostile(sub.path(), &ca, &server, Lie::FlipByte(at), &seed);
        refused(&fetch(&app, &url), "tls", "");
    }
    // The control: the same hostile harness telling the truth gets a proof.
    let sub = tempfile::tempdir_in(dir.path()).unwrap();
    let (_h, _f, app) = behind_hostile(sub.path(), &ca, &server, Lie::None, &seed);
    let p = proof(fetch(&app, &url));
    assert_eq!(p.verify(&seed.public_key()).unwrap().body.len(), 100 * 1024);
}

#[test]
fn a_proxy_that_truncates_gets_no_partial_proof() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera fetch test CA");
    let server = HttpsServer::start(&ca, &["localhost"], default_routes());
    let seed = QuorumSeed::generate();
    for path in ["/data100k", "/chunked"] {
        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        // Cut inside the body, before the last chunk and close_notify.
        let at = 20_000;
        let (_h, fetcher, app) = behind_hostile(sub.path(), &ca, &server, Lie::Truncate(at), &seed);
        let resp = fetch(&app, &format!("https://localhost:{}{path}", server.port()));
        match &resp {
            FetchAppResponse::Error { kind, message } => {
                assert!(kind == "http" || kind == "tls", "{kind}: {message}");
                assert!(
                    message.contains("ended before the response was complete")
                        || message.contains("close_notify")
                        || message.contains("unexpected"),
                    "{message}"
                );
            }
            other => panic!("a truncated response was answered with {other:?}"),
        }
        assert!(fetcher.log_text().contains("nothing signed"));
    }
}

#[test]
fn a_proxy_that_stalls_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera fetch test CA");
    let server = HttpsServer::start(&ca, &["localhost"], default_routes());
    let seed = QuorumSeed::generate();
    let (_h, _f, app) = behind_hostile(dir.path(), &ca, &server, Lie::Stall(20_000), &seed);
    let started = std::time::Instant::now();
    let resp = fetch(
        &app,
        &format!("https://localhost:{}/data100k", server.port()),
    );
    refused(&resp, "timeout", "");
    // The step timeout is 2 s; a generous bound, far below "hangs forever".
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
}
