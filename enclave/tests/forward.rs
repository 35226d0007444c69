//! Key forwarding between real `tessera-enclave --dev` processes: node A is provisioned by a
//! share ceremony, nodes B and C join by forwarding, and all three sign with one quorum key.
//! Everything the host could send instead (documents of other namespaces, images, manifests;
//! stale, replayed or unchallenged documents; altered, substituted or misdirected exports;
//! exports to nodes that already have a key) is refused, leaves both nodes as they were, and an
//! honest forward still succeeds afterwards.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use support::{Ceremony, EnclaveProc, assert_refused, member_checks_request};
use tessera_core::bytes::{ByteArray, Hash32};
use tessera_core::forward::{AcceptedJoin, FORWARD_VERSION, ForwardExport, ForwardRequest};
use tessera_core::manifest::{Manifest, ManifestEnvelope};
use tessera_core::objects::{GenesisRequest, OBJECT_VERSION};
use tessera_core::protocol::{AppRequest, ErrorCode, Phase, Request, Response, Status};
use tessera_core::quorum::QuorumSeed;
use tessera_core::sign::{Purpose, signed_message};

/// A namespace whose dev nodes share one dev CA, with node A provisioned by a 2-of-3 ceremony
/// on a manifest of nonce 2 (so an older manifest exists to be refused).
struct Namespace {
    _ca_dir: tempfile::TempDir,
    ca: PathBuf,
    a: Ceremony,
    /// The first manifest of the namespace (nonce 1), superseded by A's.
    older: ManifestEnvelope,
}

impl Namespace {
    fn new(a_args: &[&str]) -> Self {
        let ca_dir = tempfile::tempdir().unwrap();
        let ca = ca_dir.path().join("dev-ca.pem");
        let mut args = vec!["--dev-ca", ca.to_str().unwrap()];
        args.extend_from_slice(a_args);
        let mut a = Ceremony::with_enclave_args(3, 2, None, Hash32::default(), &args);
        let older = a.envelope.clone();
        let mut m = a.manifest().clone();
        m.namespace.nonce = 2;
        a.envelope = a.approved(m);
        a.boot();
        a.complete();
        Self {
            _ca_dir: ca_dir,
            ca,
            a,
            older,
        }
    }

    /// A fresh dev node of this namespace (same dev CA), waiting for boot.
    fn node(&self, tag: &str) -> Node {
        self.node_with(tag, &[])
    }

    fn node_with(&self, tag: &str, args: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec!["--dev-ca", self.ca.to_str().unwrap()];
        all.extend_from_slice(args);
        let enclave = EnclaveProc::start_with(dir.path(), tag, None, &all);
        assert_eq!(
            enclave.root.sha256(),
            self.a.enclave.root.sha256(),
            "nodes of one dev namespace share the dev root"
        );
        Node { _dir: dir, enclave }
    }

    fn manifest(&self) -> &Manifest {
        self.a.manifest()
    }

    fn approved(&mut self, m: Manifest) -> ManifestEnvelope {
        self.a.approved(m)
    }

    /// A manifest newer than A's, with nothing else changed.
    fn newer(&mut self, nonce: u64) -> ManifestEnvelope {
        let mut m = self.manifest().clone();
        m.namespace.nonce = nonce;
        self.approved(m)
    }

    fn challenge(&self) -> ByteArray<32> {
        match self.a.enclave.call(&Request::ForwardChallenge) {
            Response::ForwardChallenge { challenge } => challenge,
            other => panic!("forward-challenge answered with {other:?}"),
        }
    }

    /// The forward request `node` makes for a fresh challenge of A's.
    fn request(&self, node: &Node) -> ForwardRequest {
        node.request(Some(&self.challenge()))
    }

    fn export(&self, request: &ForwardRequest) -> Response {
        self.a
            .enclave
            .call(&Request::ForwardExport(request.clone()))
    }

    fn export_ok(&self, request: &ForwardRequest) -> ForwardExport {
        match self.export(request) {
            Response::ForwardExported { export } => export,
            other => panic!(
                "forward-export answered with {other:?}\n{}",
                self.a.enclave.log_text()
            ),
        }
    }

    /// The whole honest exchange, A to `node`, then the node signs with the quorum key.
    fn forward(&self, node: &Node) {
        let export = self.export_ok(&self.request(node));
        match node.import(&export) {
            Response::Forwarded { manifest_hash } => {
                assert_eq!(Some(manifest_hash), node.enclave.status().manifest_hash);
            }
            other => panic!("forward-import answered with {other:?}"),
        }
        assert_eq!(node.enclave.status().phase, Phase::Provisioned);
        assert_signs(&node.enclave, self.manifest());
    }
}

struct Node {
    _dir: tempfile::TempDir,
    enclave: EnclaveProc,
}

impl Node {
    /// `join` with `envelope`; checks the attestation as a member would. Returns the
    /// ephemeral key.
    fn join(&self, envelope: &ManifestEnvelope) -> ByteArray<32> {
        match self.enclave.call(&Request::Join(envelope.clone())) {
            Response::Booted {
                manifest_hash,
                ephemeral_key,
                attestation,
            } => {
                assert_eq!(manifest_hash, envelope.manifest.hash());
                let eph = member_checks_request(envelope, &attestation, &self.enclave.root);
                assert_eq!(eph, ephemeral_key);
                assert_eq!(self.enclave.status().phase, Phase::WaitingForForward);
                ephemeral_key
            }
            other => panic!("join answered with {other:?}\n{}", self.enclave.log_text()),
        }
    }

    /// The node's forward request: its attestation bound to `challenge` and its envelope, as
    /// the host fetches it.
    fn request(&self, challenge: Option<&ByteArray<32>>) -> ForwardRequest {
        let nonce = challenge.map(|c| ByteBuf::from(c.0.to_vec()));
        match self.enclave.call(&Request::Attestation { nonce }) {
            Response::Attestation {
                document,
                envelope: Some(envelope),
            } => ForwardRequest {
                version: FORWARD_VERSION,
                envelope,
                document,
            },
            other => panic!("attestation answered with {other:?}"),
        }
    }

    fn import(&self, export: &ForwardExport) -> Response {
        self.enclave.call(&Request::ForwardImport(export.clone()))
    }
}

/// What a refusal must not change: phase, manifest, ephemeral key, patch sequence.
fn snapshot(e: &EnclaveProc) -> Status {
    e.status()
}

#[track_caller]
fn assert_unchanged(e: &EnclaveProc, before: &Status) {
    assert_eq!(&e.status(), before, "a refused request changed the node");
}

fn assert_signs(e: &EnclaveProc, m: &Manifest) {
    let message = format!("signed by {}", e.pid()).into_bytes();
    let signature = match e.call(&Request::App(AppRequest::Sign {
        message: ByteBuf::from(message.clone()),
    })) {
        Response::AppSignature { signature } => signature,
        other => panic!("app answered with {other:?}"),
    };
    m.namespace
        .quorum_public_key
        .signing
        .verify(
            &signed_message(Purpose::AppMessage, &Hash32::sha256(&message)),
            &signature,
        )
        .expect("the node signs with the namespace's quorum key");
}

/// The honest path, with every host lie on the way: node B joins with A's manifest, node C with
/// a newer approved one; all three sign with the same quorum key.
#[test]
fn nodes_join_by_forwarding_and_every_host_lie_is_refused() {
    let mut ns = Namespace::new(&[]);
    let b = ns.node("b");
    let b_eph = b.join(&ns.a.envelope);
    let a_before = snapshot(&ns.a.enclave);
    let b_before = snapshot(&b.enclave);
    let unchanged = |ns: &Namespace| {
        assert_unchanged(&ns.a.enclave, &a_before);
        assert_unchanged(&b.enclave, &b_before);
    };

    // A document bound to no challenge, or to one A never issued.
    let no_challenge = b.request(None);
    assert_refused(
        &ns.export(&no_challenge),
        ErrorCode::Rejected,
        "not bound to a challenge",
    );
    let made_up = b.request(Some(&ByteArray([7; 32])));
    assert_refused(
        &ns.export(&made_up),
        ErrorCode::Rejected,
        "not bound to a challenge",
    );
    unchanged(&ns);

    // The host swaps the envelope sent with B's document.
    let mut swapped = ns.request(&b);
    swapped.envelope = ns.newer(9);
    assert_refused(
        &ns.export(&swapped),
        ErrorCode::Rejected,
        "bound to another manifest",
    );
    // A document that does not verify (one byte altered).
    let mut altered = ns.request(&b);
    let last = altered.document.len() - 1;
    altered.document[last] ^= 1;
    assert_refused(
        &ns.export(&altered),
        ErrorCode::Rejected,
        "attestation does not verify",
    );
    unchanged(&ns);

    // The real export for B, and what the host could do with it instead of delivering it.
    let request = ns.request(&b);
    let export = ns.export_ok(&request);
    let a_before = snapshot(&ns.a.enclave);
    assert_eq!(export.body.recipient_key, b_eph);
    // Its challenge is spent: the same document is refused as a replay.
    assert_refused(
        &ns.export(&request),
        ErrorCode::Rejected,
        "not bound to a challenge",
    );
    // Altered in transit: the key bytes, the recipient, the signature.
    let mut tampered = export.clone();
    let mid = tampered.body.encrypted_key.len() / 2;
    tampered.body.encrypted_key[mid] ^= 1;
    assert_refused(&b.import(&tampered), ErrorCode::Rejected, "signature");
    let mut resigned_nothing = export.clone();
    resigned_nothing.signature.0.0[5] ^= 1;
    assert_refused(
        &b.import(&resigned_nothing),
        ErrorCode::Rejected,
        "signature",
    );
    // Substituted: the host's own key, sealed to B's ephemeral key and signed by itself.
    let forged = ForwardExport::seal(
        &QuorumSeed::generate(),
        &AcceptedJoin {
            namespace: ns.manifest().namespace.name.clone(),
            manifest_hash: ns.manifest().hash(),
            recipient_key: b_eph,
            document_sha256: export.body.document_sha256,
            challenge: Vec::new(),
        },
    )
    .unwrap();
    assert_refused(
        &b.import(&forged),
        ErrorCode::Rejected,
        "not by the manifest's quorum key",
    );
    assert_unchanged(&ns.a.enclave, &a_before);
    assert_unchanged(&b.enclave, &b_before);

    // C joins with a newer manifest, approved by A's Manifest set; B's export is not for C.
    let c = ns.node("c");
    let newer = ns.newer(3);
    c.join(&newer);
    let c_before = snapshot(&c.enclave);
    assert_refused(&c.import(&export), ErrorCode::Rejected, "another manifest");
    assert_unchanged(&c.enclave, &c_before);

    // The untouched export still provisions B.
    match b.import(&export) {
        Response::Forwarded { manifest_hash } => assert_eq!(manifest_hash, ns.manifest().hash()),
        other => panic!("forward-import answered with {other:?}"),
    }
    assert_signs(&b.enclave, ns.manifest());
    let b_done = snapshot(&b.enclave);
    assert_eq!(b_done.phase, Phase::Provisioned);

    // B has a key now: its document binds no ephemeral key, and a second export is out of phase.
    assert_refused(
        &ns.export(&ns.request(&b)),
        ErrorCode::Rejected,
        "binds no X25519 ephemeral key",
    );
    assert_refused(&b.import(&export), ErrorCode::WrongPhase, "forward-import");
    assert_unchanged(&b.enclave, &b_done);

    // A node that is not provisioned cannot export or issue challenges.
    assert_refused(
        &c.enclave.call(&Request::ForwardChallenge),
        ErrorCode::WrongPhase,
        "forward-challenge",
    );
    assert_refused(
        &c.enclave.call(&Request::ForwardExport(request.clone())),
        ErrorCode::WrongPhase,
        "forward-export",
    );
    assert_unchanged(&c.enclave, &c_before);

    ns.forward(&c);
    // B, a forwarded node, can forward in turn.
    let d = ns.node("d");
    d.join(&ns.a.envelope);
    let d_export = match b.enclave.call(&Request::ForwardChallenge) {
        Response::ForwardChallenge { challenge } => {
            match b
                .enclave
                .call(&Request::ForwardExport(d.request(Some(&challenge))))
            {
                Response::ForwardExported { export } => export,
                other => panic!("B's export answered with {other:?}"),
            }
        }
        other => panic!("B's challenge answered with {other:?}"),
    };
    assert!(matches!(d.import(&d_export), Response::Forwarded { .. }));
    for node in [&ns.a.enclave, &b.enclave, &c.enclave, &d.enclave] {
        assert_signs(node, ns.manifest());
    }
}

/// Nodes that are not of this namespace's kind: another namespace, an older manifest, another
/// image, and a newer manifest that changes the Manifest set or lacks approvals.
#[test]
fn nodes_of_other_namespaces_images_or_older_manifests_are_refused() {
    let mut ns = Namespace::new(&[]);
    let a_before = snapshot(&ns.a.enclave);

    // Another namespace: its own genesis and quorum key, approved by the same people.
    let other = ns.node("other");
    let mut members = support::devices(3, 0);
    let req = GenesisRequest {
        version: OBJECT_VERSION,
        namespace: "other".to_owned(),
        share_set: tessera_core::manifest::MemberSet {
            threshold: 2,
            members: members
                .iter_mut()
                .map(|d| tessera_core::manifest::Member {
                    alias: d.alias().to_owned(),
                    public_key: support::key(d, tessera_core::keys::Role::Share),
                })
                .collect(),
        },
        dr_recipient: None,
        manifest_set: None,
    };
    let output = match other.enclave.call(&Request::Genesis(req)) {
        Response::Genesis { output, .. } => output,
        r => panic!("{r:?}"),
    };
    let m = support::manifest(
        &output,
        &other.enclave.pcrs,
        &mut members,
        2,
        5,
        Hash32::default(),
    );
    let other_env = ns.approved(m);
    other.join(&other_env);
    let other_before = snapshot(&other.enclave);
    assert_refused(
        &ns.export(&ns.request(&other)),
        ErrorCode::Rejected,
        "booted namespace \"other\"",
    );

    // The namespace's older manifest (nonce 1 < A's 2), validly approved.
    let old = ns.node("old");
    old.join(&ns.older);
    let old_before = snapshot(&old.enclave);
    assert_refused(
        &ns.export(&ns.request(&old)),
        ErrorCode::Rejected,
        "not above 2",
    );

    // Another image: a copy of the enclave binary with one byte more has another PCR0; its
    // manifest is newer and approved, but names that image.
    let dir = tempfile::tempdir().unwrap();
    let exe = patched_binary(dir.path());
    let rogue = rogue_node(&ns, &exe);
    let mut m = ns.manifest().clone();
    m.namespace.nonce = 7;
    m.enclave.pcr0 = rogue.enclave.pcrs[0];
    let rogue_env = ns.approved(m);
    rogue.join(&rogue_env);
    let rogue_before = snapshot(&rogue.enclave);
    assert_refused(
        &ns.export(&ns.request(&rogue)),
        ErrorCode::Rejected,
        "another image: PCR0",
    );

    // A newer manifest that brings in another Manifest set, and one short of approvals.
    let changed = ns.node("changed");
    let mut m = ns.manifest().clone();
    m.namespace.nonce = 8;
    m.manifest_set.threshold = 1;
    let changed_env = ns.approved(m);
    changed.join(&changed_env);
    assert_refused(
        &ns.export(&ns.request(&changed)),
        ErrorCode::Rejected,
        "changes the Manifest set",
    );
    let short = ns.node("short");
    let mut env = ns.newer(9);
    env.approvals.truncate(1);
    // The joining node itself refuses to boot it...
    assert_refused(
        &short.enclave.call(&Request::Join(env.clone())),
        ErrorCode::Rejected,
        "approvals",
    );

    assert_unchanged(&ns.a.enclave, &a_before);
    assert_unchanged(&other.enclave, &other_before);
    assert_unchanged(&old.enclave, &old_before);
    assert_unchanged(&rogue.enclave, &rogue_before);

    // After all that, an honest node still joins.
    let b = ns.node("b");
    b.join(&ns.a.envelope);
    ns.forward(&b);
}

/// A document older than the exporter's limit is refused by the exporter's own clock, and the
/// honest forward with a fresh document succeeds.
#[test]
fn a_stale_document_is_refused() {
    const MAX_AGE: u64 = 4;
    let ns = Namespace::new(&["--forward-max-age", &MAX_AGE.to_string()]);
    let b = ns.node("b");
    b.join(&ns.a.envelope);
    let stale = ns.request(&b);
    let a_before = snapshot(&ns.a.enclave);
    let b_before = snapshot(&b.enclave);
    // Waiting on the clock itself, not on a process: the document must age past the limit.
    let until = Instant::now() + Duration::from_secs(MAX_AGE + 2);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_refused(&ns.export(&stale), ErrorCode::Rejected, "old");
    assert_unchanged(&ns.a.enclave, &a_before);
    assert_unchanged(&b.enclave, &b_before);
    ns.forward(&b);
}

/// A copy of the enclave binary with one byte appended: it runs the same, measures differently.
fn patched_binary(dir: &Path) -> PathBuf {
    let exe = dir.join("tessera-enclave-other");
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_tessera-enclave")).unwrap();
    bytes.push(0);
    std::fs::write(&exe, bytes).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    exe
}

/// A node of the namespace's dev CA running `exe` instead of the enclave binary.
fn rogue_node(ns: &Namespace, exe: &Path) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let enclave = EnclaveProc::start_exe(
        exe,
        dir.path(),
        "rogue",
        None,
        &["--dev-ca", ns.ca.to_str().unwrap()],
    );
    Node { _dir: dir, enclave }
}

/// The same exchange through two relays, as `tessera forward` carries it: the relays pass the
/// messages and the enclaves' refusals through, and decide nothing.
#[test]
fn forwarding_through_two_relays() {
    use support::RelayProc;
    use tessera_core::cbor;

    let ns = Namespace::new(&[]);
    let b = ns.node("b");
    let relay_a = RelayProc::start(&ns.a.enclave.addr);
    let relay_b = RelayProc::start(&b.enclave.addr);

    // Not joined yet: there is no forward request to give.
    let (code, body) = relay_b.http(
        "GET",
        &format!("/v1/forward/request?nonce={}", "00".repeat(32)),
        b"",
    );
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&body));
    let (code, body) = relay_b.http("POST", "/v1/join", &ns.a.envelope.encode());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(matches!(
        Response::decode(&body).unwrap(),
        Response::Booted { .. }
    ));
    let (code, _) = relay_b.http("GET", "/v1/forward/request", b"");
    assert_eq!(code, 400, "the challenge is required");

    let (code, body) = relay_a.http("POST", "/v1/forward/challenge", b"");
    assert_eq!(code, 200);
    let Response::ForwardChallenge { challenge } = Response::decode(&body).unwrap() else {
        panic!("no challenge")
    };
    let (code, request) = relay_b.http(
        "GET",
        &format!("/v1/forward/request?nonce={}", challenge.to_hex()),
        b"",
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&request));
    ForwardRequest::decode(&request).expect("a canonical forward request");
    let (code, body) = relay_a.http("POST", "/v1/forward/export", &request);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let Response::ForwardExported { export } = Response::decode(&body).unwrap() else {
        panic!("no export")
    };
    // The enclave's refusal comes through as 422 with its reason: the challenge is spent.
    let (code, body) = relay_a.http("POST", "/v1/forward/export", &request);
    assert_eq!(code, 422);
    assert!(String::from_utf8_lossy(&body).contains("not bound to a challenge"));
    // An altered export is refused by B, through its relay, and changes nothing.
    let mut altered = export.clone();
    altered.body.encrypted_key[3] ^= 1;
    let (code, _) = relay_b.http("POST", "/v1/forward/import", &cbor::encode(&altered));
    assert_eq!(code, 422);
    assert_eq!(b.enclave.status().phase, Phase::WaitingForForward);
    let (code, body) = relay_b.http("POST", "/v1/forward/import", &export.encode());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, body) = relay_b.http("GET", "/v1/status", b"");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["phase"], "provisioned");
    assert_signs(&b.enclave, ns.manifest());
}

/// `tessera forward join` and `tessera forward run` as an operator runs them, between two relays;
/// a second run finds nothing to do and says so with exit code 1.
#[test]
fn the_cli_joins_a_node_and_carries_the_forward() {
    use support::RelayProc;

    let ns = Namespace::new(&[]);
    let b = ns.node("b");
    let relay_a = RelayProc::start(&ns.a.enclave.addr);
    let relay_b = RelayProc::start(&b.enclave.addr);
    let dir = tempfile::tempdir().unwrap();
    let envelope = dir.path().join("envelope.cbor");
    std::fs::write(&envelope, ns.a.envelope.encode()).unwrap();
    // The dev root node A wrote at start, which every node of this dev CA shares.
    let root = ns.a.dir.path().join("e0-root.pem");
    let tessera = |args: &[&str]| {
        std::process::Command::new(support::tessera_binary())
            .args(args)
            .env("TESSERA_TRANSCRIPT", dir.path().join("transcript.jsonl"))
            .output()
            .unwrap()
    };
    let url_a = format!("http://{}", relay_a.addr);
    let url_b = format!("http://{}", relay_b.addr);

    let out = tessera(&[
        "forward",
        "join",
        "--relay",
        &url_b,
        envelope.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.enclave.status().phase, Phase::WaitingForForward);

    let saved = dir.path().join("forward");
    let out = tessera(&[
        "forward",
        "run",
        "--from",
        &url_a,
        "--to",
        &url_b,
        "--out",
        saved.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("accepted the key and is provisioned"),
        "{stdout}"
    );
    ForwardRequest::decode(&std::fs::read(saved.join("forward-request.cbor")).unwrap()).unwrap();
    ForwardExport::decode(&std::fs::read(saved.join("forward-export.cbor")).unwrap()).unwrap();
    assert_signs(&b.enclave, ns.manifest());

    // B has its key: nothing more to forward, and the command says why.
    let out = tessera(&["forward", "run", "--from", &url_a, "--to", &url_b]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting-for-forward"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
