//! Shared harness for the end-to-end tests: a real `tessera-enclave --dev` process on a unix
//! socket in a temporary directory, software members, and the member-side steps of a ceremony
//! done the way the operator app does them (verify the attestation offline against the pinned
//! dev root, decrypt the share on the device, re-encrypt it to the ephemeral key, sign the
//! receipt).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_bytes::ByteBuf;
use tessera_core::attestation::{self, Policy, TrustAnchor, VerifiedAttestation};
use tessera_core::bytes::{ByteArray, Hash32, Pcr};
use tessera_core::device::{KeyDevice, SoftwareKeyDevice, approve};
use tessera_core::keys::Role;
use tessera_core::manifest::{
    EnclaveSpec, MANIFEST_VERSION, Manifest, ManifestEnvelope, Member, MemberSet, Namespace, Pivot,
    RestartPolicy, ShareMember, ShareSet,
};
use tessera_core::objects::{
    GenesisOutput, GenesisRequest, OBJECT_VERSION, SharePost, ShareSubmission,
};
use tessera_core::protocol::{AppRequest, Client, ErrorCode, Phase, Request, Response, Status};
use tessera_core::provision;
use tessera_core::quorum::x25519_recipient;
use tessera_core::shamir::Share;
use tessera_core::sign::{Approval, Purpose, signed_message};
use tessera_core::transport::Address;

/// How long any single step may take before a test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(30);

/// A running `tessera-enclave --dev`, killed when dropped.
pub struct EnclaveProc {
    child: Child,
    pub addr: Address,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// The dev root this process generated, pinned explicitly as an operator would.
    pub root: TrustAnchor,
    /// PCR0..PCR3 as the process wrote them.
    pub pcrs: [Pcr; 4],
}

impl EnclaveProc {
    /// Starts an enclave listening on `dir/enclave.sock`; `tag` keeps the dev root and PCR files
    /// of successive processes apart. Returns once the readiness line is printed.
    pub fn start(dir: &Path, tag: &str, pivot: Option<&Path>) -> Self {
        Self::start_with(dir, tag, pivot, &[])
    }

    /// [`EnclaveProc::start`] with more command-line arguments.
    pub fn start_with(dir: &Path, tag: &str, pivot: Option<&Path>, args: &[&str]) -> Self {
        Self::start_exe(
            Path::new(env!("CARGO_BIN_EXE_tessera-enclave")),
            dir,
            tag,
            pivot,
            args,
        )
    }

    /// [`EnclaveProc::start_with`] running the binary `exe` (a copy measured differently).
    pub fn start_exe(
        exe: &Path,
        dir: &Path,
        tag: &str,
        pivot: Option<&Path>,
        args: &[&str],
    ) -> Self {
        let socket = dir.join("enclave.sock");
        let root_path = dir.join(format!("{tag}-root.pem"));
        let pcrs_path = dir.join(format!("{tag}-pcrs.json"));
        let log = dir.join(format!("{tag}-enclave.log"));
        let mut cmd = Command::new(exe);
        cmd.arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .arg("--dev")
            .arg("--dev-root-out")
            .arg(&root_path)
            .arg("--dev-pcrs-out")
            .arg(&pcrs_path);
        if let Some(p) = pivot {
            cmd.arg("--pivot-bin").arg(p);
        }
        cmd.args(args);
        // The enclave logs a line per request; a file never fills up and blocks it as a pipe can.
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start tessera-enclave");
        let ready = readiness(
            child.stdout.take().unwrap(),
            "tessera-enclave: listening on",
        );
        if ready.is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "enclave did not become ready: {ready:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let root = TrustAnchor::from_pem(&std::fs::read(&root_path).unwrap()).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&pcrs_path).unwrap()).unwrap();
        let pcr = |name: &str| Pcr::from_hex(json[name].as_str().unwrap()).unwrap();
        Self {
            child,
            addr: Address::Unix(socket.clone()),
            socket,
            log,
            root,
            pcrs: [pcr("PCR0"), pcr("PCR1"), pcr("PCR2"), pcr("PCR3")],
        }
    }

    #[must_use]
    pub fn client(&self) -> Client {
        Client::new(self.addr.clone(), STEP)
    }

    /// One request on a fresh connection.
    pub fn call(&self, request: &Request) -> Response {
        self.client().call(request).expect("enclave answers")
    }

    pub fn status(&self) -> Status {
        match self.call(&Request::Status) {
            Response::Status(s) => s,
            other => panic!("status answered with {other:?}"),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (a crash or a host restarting the enclave) and waits for it.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits up to [`STEP`] for the process to exit; its exit code.
    pub fn signal_and_wait(&mut self, signal: nix::sys::signal::Signal) -> Option<i32> {
        signal_and_wait(&mut self.child, signal)
    }
}

/// Sends `signal` to `child` and waits up to [`STEP`] for it to exit; its exit code (`None` if
/// a signal ended it). Panics if it is still running after that.
pub fn signal_and_wait(child: &mut Child, signal: nix::sys::signal::Signal) -> Option<i32> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
    let until = std::time::Instant::now() + STEP;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            std::time::Instant::now() < until,
            "still running {STEP:?} after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for EnclaveProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `out` until a line starting with `prefix`, for at most [`STEP`]; then keeps draining
/// it in the background so later writes never block or fail. Returns the line.
pub fn readiness(out: impl Read + Send + 'static, prefix: &str) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let mut sent = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if !sent && line.starts_with(&prefix) {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    rx.recv_timeout(STEP)
        .map_err(|e| format!("no readiness line: {e}"))
}

/// Deterministic software members `m0`, `m1`, ...; `offset` picks a disjoint group (outsiders).
pub fn devices(n: usize, offset: u8) -> Vec<SoftwareKeyDevice> {
    (0..n)
        .map(|i| {
            let i = offset + i as u8;
            SoftwareKeyDevice::from_seed(&format!("m{i}"), &[i; 32])
        })
        .collect()
}

pub fn key(device: &mut SoftwareKeyDevice, role: Role) -> tessera_core::keys::PublicKey {
    device.public_key(role).unwrap()
}

/// Genesis on `enclave` for the Share keys of `devices`; returns the output and attestation.
pub fn genesis(
    enclave: &EnclaveProc,
    devices: &mut [SoftwareKeyDevice],
    threshold: u8,
) -> (GenesisOutput, Vec<u8>) {
    let members = devices
        .iter_mut()
        .map(|d| Member {
            alias: d.alias().to_owned(),
            public_key: key(d, Role::Share),
        })
        .collect();
    let req = GenesisRequest {
        version: OBJECT_VERSION,
        namespace: "test".to_owned(),
        share_set: MemberSet { threshold, members },
        dr_recipient: None,
        manifest_set: None,
    };
    match enclave.call(&Request::Genesis(req)) {
        Response::Genesis {
            output,
            attestation,
        } => (output, attestation.into_vec()),
        other => panic!("genesis answered with {other:?}"),
    }
}

/// What a member's app checks of a genesis: the attestation binds this output, the test
/// signature is by the published quorum key, and their own share opens and matches its
/// commitment. Returns the member's sealed share.
pub fn member_checks_genesis(
    output: &GenesisOutput,
    attestation: &[u8],
    root: &TrustAnchor,
    device: &mut SoftwareKeyDevice,
) -> Vec<u8> {
    verify(
        attestation,
        root,
        Policy::new().expect_user_data(output.hash().0.to_vec()),
    )
    .expect("genesis attestation verifies and binds the output hash");
    output
        .verify_test_signature()
        .expect("test signature by the quorum key");
    let mine = key(device, Role::Share);
    let entry = output
        .body
        .shares
        .iter()
        .find(|s| s.share_key == mine)
        .expect("a share for every member");
    let share = provision::open_share(device, &entry.encrypted_share, "check").unwrap();
    share
        .check_commitment(&entry.commitment)
        .expect("share matches its commitment");
    entry.encrypted_share.to_vec()
}

pub fn verify(
    document: &[u8],
    root: &TrustAnchor,
    policy: Policy,
) -> Result<VerifiedAttestation, attestation::AttestationError> {
    attestation::verify(
        document,
        root,
        time::OffsetDateTime::now_utc(),
        &policy.max_age(Duration::from_mins(10)),
    )
}

/// The manifest a coordinator drafts from a genesis output and the enclave's PCRs.
pub fn manifest(
    output: &GenesisOutput,
    pcrs: &[Pcr; 4],
    approvers: &mut [SoftwareKeyDevice],
    manifest_threshold: u8,
    nonce: u64,
    app_sha256: Hash32,
) -> Manifest {
    let set = |role: Role, approvers: &mut [SoftwareKeyDevice], threshold| MemberSet {
        threshold,
        members: approvers
            .iter_mut()
            .map(|d| Member {
                alias: d.alias().to_owned(),
                public_key: key(d, role),
            })
            .collect(),
    };
    Manifest {
        version: MANIFEST_VERSION,
        namespace: Namespace {
            name: output.body.namespace.clone(),
            nonce,
            quorum_public_key: output.body.quorum_public_key,
            dr_recipient: None,
        },
        enclave: EnclaveSpec {
            pcr0: pcrs[0],
            pcr1: pcrs[1],
            pcr2: pcrs[2],
            pcr3: pcrs[3],
            debug_allowed: false,
        },
        pivot: Pivot {
            app_sha256,
            args: Vec::new(),
            restart: RestartPolicy::Never,
            ingress_port: None,
        },
        manifest_set: set(Role::Manifest, approvers, manifest_threshold),
        share_set: ShareSet {
            threshold: output.body.threshold,
            members: output
                .body
                .shares
                .iter()
                .map(|s| ShareMember {
                    alias: s.alias.clone(),
                    public_key: s.share_key,
                    commitment: s.commitment,
                })
                .collect(),
        },
        patch_set: set(Role::Patch, approvers, 1),
    }
}

/// `m` with approvals from the first `threshold` of `members`.
pub fn approve_envelope(m: Manifest, members: &mut [SoftwareKeyDevice]) -> ManifestEnvelope {
    let t = usize::from(m.manifest_set.threshold);
    let approvals = members[..t].iter_mut().map(|d| approval(&m, d)).collect();
    ManifestEnvelope {
        manifest: m,
        approvals,
    }
}

pub fn approval(manifest: &Manifest, device: &mut SoftwareKeyDevice) -> Approval {
    approve(device, Purpose::Manifest, &manifest.hash(), "manifest").unwrap()
}

/// What a member checks of a request bundle before handing over a share (as
/// `tessera provision sign` does): approvals at threshold, the attestation chains to the pinned
/// root, its PCRs are the manifest's and it binds the manifest hash. Returns the ephemeral key.
pub fn member_checks_request(
    envelope: &ManifestEnvelope,
    document: &[u8],
    root: &TrustAnchor,
) -> ByteArray<32> {
    envelope.verify().expect("envelope approvals at threshold");
    let m = &envelope.manifest;
    let policy = Policy::new()
        .expect_pcr(0, m.enclave.pcr0.0.to_vec())
        .expect_pcr(1, m.enclave.pcr1.0.to_vec())
        .expect_pcr(2, m.enclave.pcr2.0.to_vec())
        .expect_pcr(3, m.enclave.pcr3.0.to_vec())
        .expect_user_data(m.hash().0.to_vec());
    let verified = verify(document, root, policy).expect("request attestation verifies");
    ByteArray::try_from(verified.public_key().expect("ephemeral key attested")).unwrap()
}

/// A whole ceremony's cast and artefacts: an enclave that has run genesis, `n` members holding
/// their sealed shares, and a manifest approved by the first `threshold` of them.
pub struct Ceremony {
    pub dir: tempfile::TempDir,
    pub enclave: EnclaveProc,
    pub members: Vec<SoftwareKeyDevice>,
    pub sealed: Vec<Vec<u8>>,
    pub genesis: GenesisOutput,
    pub envelope: ManifestEnvelope,
    pub threshold: u8,
    starts: usize,
}

impl Ceremony {
    /// `t`-of-`n` with the built-in app.
    pub fn new(n: usize, t: u8) -> Self {
        Self::with_pivot(n, t, None, Hash32::default())
    }

    pub fn with_pivot(n: usize, t: u8, pivot: Option<&Path>, app_sha256: Hash32) -> Self {
        Self::with_enclave_args(n, t, pivot, app_sha256, &[])
    }

    /// [`Ceremony::with_pivot`] with more command-line arguments for the enclave.
    pub fn with_enclave_args(
        n: usize,
        t: u8,
        pivot: Option<&Path>,
        app_sha256: Hash32,
        args: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let enclave = EnclaveProc::start_with(dir.path(), "e0", pivot, args);
        let mut members = devices(n, 0);
        let (genesis, attestation) = genesis(&enclave, &mut members, t);
        let sealed = members
            .iter_mut()
            .map(|d| member_checks_genesis(&genesis, &attestation, &enclave.root, d))
            .collect();
        let m = manifest(&genesis, &enclave.pcrs, &mut members, t, 1, app_sha256);
        let envelope = approve_envelope(m, &mut members);
        Self {
            dir,
            enclave,
            members,
            sealed,
            genesis,
            envelope,
            threshold: t,
            starts: 1,
        }
    }

    /// `m` with approvals from the first `threshold` Manifest-set members.
    pub fn approved(&mut self, m: Manifest) -> ManifestEnvelope {
        approve_envelope(m, &mut self.members)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.envelope.manifest
    }

    pub fn boot(&self) -> ByteArray<32> {
        self.boot_envelope(&self.envelope)
    }

    pub fn boot_envelope(&self, envelope: &ManifestEnvelope) -> ByteArray<32> {
        match self.enclave.call(&Request::Boot(envelope.clone())) {
            Response::Booted {
                manifest_hash,
                ephemeral_key,
                attestation,
            } => {
                assert_eq!(manifest_hash, envelope.manifest.hash());
                let from_doc = member_checks_request(envelope, &attestation, &self.enclave.root);
                assert_eq!(
                    from_doc, ephemeral_key,
                    "boot attestation binds the ephemeral key"
                );
                ephemeral_key
            }
            other => panic!("boot answered with {other:?}\n{}", self.enclave.log_text()),
        }
    }

    /// Kills the enclave and starts a new process on the same socket (new dev root, new
    /// ephemeral key, no memory of the old boot).
    pub fn restart_enclave(&mut self, pivot: Option<&Path>) {
        let tag = format!("e{}", self.starts);
        self.starts += 1;
        self.enclave.stop();
        self.enclave = EnclaveProc::start(self.dir.path(), &tag, pivot);
    }

    /// What a member fetches before handing over: a fresh attestation for the current boot and
    /// the envelope it booted; checked as the member's app checks it. Returns the ephemeral key.
    pub fn request(&self) -> ByteArray<32> {
        match self.enclave.call(&Request::Attestation { nonce: None }) {
            Response::Attestation {
                document,
                envelope: Some(envelope),
            } => {
                assert_eq!(
                    envelope, self.envelope,
                    "the enclave serves the envelope it booted"
                );
                member_checks_request(&envelope, &document, &self.enclave.root)
            }
            other => panic!("attestation answered with {other:?}"),
        }
    }

    /// Member `i`'s share bundle for the current boot, built by the operator app's code.
    pub fn share(&mut self, i: usize) -> ShareSubmission {
        let eph = self.request();
        let m = self.envelope.manifest.clone();
        self.share_for(i, &m, &eph)
    }

    pub fn share_for(&mut self, i: usize, m: &Manifest, eph: &ByteArray<32>) -> ShareSubmission {
        provision::hand_over(m, eph, &self.sealed[i], &mut self.members[i])
            .expect("hand over")
            .0
    }

    /// The plaintext share of member `i`, as only their device can open it (for building
    /// submissions the operator app would refuse to build).
    pub fn open(&mut self, i: usize) -> Share {
        provision::open_share(&mut self.members[i], &self.sealed[i], "test").unwrap()
    }

    pub fn post(&self, sub: &ShareSubmission) -> Response {
        self.enclave.call(&Request::PostShare(sub.clone()))
    }

    pub fn post_ok(&self, sub: &ShareSubmission) -> (u8, bool) {
        match self.post(sub) {
            Response::ShareAccepted {
                received,
                provisioned,
                ..
            } => (received, provisioned),
            other => panic!("share refused: {other:?}"),
        }
    }

    /// Posts fresh shares from `who` (in order, skipping members whose share the enclave already
    /// holds) until provisioned, then proves the key is live: the app's signature verifies with
    /// the manifest's quorum key.
    pub fn complete_with(&mut self, who: &[usize]) {
        for &i in who {
            let status = self.enclave.status();
            assert_eq!(status.phase, Phase::WaitingForShares, "{status:?}");
            if status
                .shares_from
                .iter()
                .any(|a| a == self.members[i].alias())
            {
                continue;
            }
            let sub = self.share(i);
            let (_, provisioned) = self.post_ok(&sub);
            if provisioned {
                self.assert_app_signs();
                return;
            }
        }
        panic!(
            "not provisioned after shares from {who:?}: {:?}",
            self.enclave.status()
        );
    }

    /// Completes with any members, first to last.
    pub fn complete(&mut self) {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.complete_with(&all);
    }

    pub fn assert_app_signs(&self) {
        let status = self.enclave.status();
        assert_eq!(status.phase, Phase::Provisioned);
        assert_eq!(status.manifest_hash, Some(self.manifest().hash()));
        let message = b"hello from the quorum".to_vec();
        let signature = match self.enclave.call(&Request::App(AppRequest::Sign {
            message: ByteBuf::from(message.clone()),
        })) {
            Response::AppSignature { signature } => signature,
            other => panic!("app answered with {other:?}"),
        };
        self.manifest()
            .namespace
            .quorum_public_key
            .signing
            .verify(
                &signed_message(Purpose::AppMessage, &Hash32::sha256(&message)),
                &signature,
            )
            .expect("app signature verifies with the manifest's quorum key");
    }
}

/// A submission for `share` as member `signer` would sign it, without the operator app's own
/// commitment check: what a broken or hostile member tool could send.
pub fn forge_submission(
    m: &Manifest,
    eph: &ByteArray<32>,
    share: &Share,
    member: tessera_core::keys::PublicKey,
    signer: &mut SoftwareKeyDevice,
) -> ShareSubmission {
    let encrypted =
        tessera_core::age_share::encrypt(&share.to_bytes(), &[&x25519_recipient(eph)]).unwrap();
    let post = SharePost {
        version: OBJECT_VERSION,
        manifest_hash: m.hash(),
        ephemeral_key: *eph,
        member,
        encrypted_share_sha256: Hash32::sha256(&encrypted),
    };
    let mut receipt = approve(signer, Purpose::SharePost, &post.hash(), "receipt").unwrap();
    receipt.member = member;
    ShareSubmission {
        post,
        receipt,
        encrypted_share: ByteBuf::from(encrypted),
    }
}

/// Asserts an error response with `code` whose message contains `needle`.
#[track_caller]
pub fn assert_refused(response: &Response, code: ErrorCode, needle: &str) {
    match response {
        Response::Error { code: c, message } => {
            assert_eq!(*c, code, "{message}");
            assert!(
                message.contains(needle),
                "expected {needle:?} in the error, got {message:?}"
            );
        }
        other => panic!("expected a {} error, got {other:?}", code.as_str()),
    }
}

/// Writes a frame body to a raw connection and reads one response frame.
pub fn raw_exchange(stream: &mut std::os::unix::net::UnixStream, frame: &[u8]) -> Response {
    stream.write_all(frame).unwrap();
    let body = tessera_core::protocol::read_frame(stream, tessera_core::protocol::MAX_FRAME)
        .expect("a response frame");
    Response::decode(&body).unwrap()
}

/// A 4-byte big-endian length followed by `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// The `tessera-relay` binary, built once per test process next to the enclave binary.
pub fn relay_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let enclave_bin = Path::new(env!("CARGO_BIN_EXE_tessera-enclave"));
    let out_dir = enclave_bin.parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    BUILD.call_once(|| {
        let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cmd.current_dir(root)
            .args(["build", "--locked", "-p", "tessera-relay"]);
        if out_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p tessera-relay");
        assert!(status.success(), "cargo build -p tessera-relay failed");
    });
    out_dir.join("tessera-relay")
}

/// A running `tessera-relay` on an ephemeral loopback port, killed when dropped.
pub struct RelayProc {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl RelayProc {
    pub fn start(enclave: &Address) -> Self {
        Self::start_with(enclave, &[])
    }

    /// [`RelayProc::start`] with more command-line arguments.
    pub fn start_with(enclave: &Address, args: &[&str]) -> Self {
        let mut child = Command::new(relay_binary())
            .args(["--listen", "127.0.0.1:0", "--enclave"])
            .arg(enclave.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tessera-relay");
        let line = match readiness(
            child.stdout.take().unwrap(),
            "tessera-relay: listening on http://",
        ) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("relay did not become ready: {e}");
            }
        };
        let addr = line
            .trim_start_matches("tessera-relay: listening on http://")
            .trim()
            .to_owned();
        Self { child, addr }
    }

    /// One HTTP/1.1 exchange; returns the status code and the body.
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response head");
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status code");
        let mut rest = raw[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            rest = dechunk(&rest);
        }
        (code, rest)
    }

    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits up to [`STEP`] for the relay to exit; its exit code.
    pub fn signal_and_wait(&mut self, signal: nix::sys::signal::Signal) -> Option<i32> {
        signal_and_wait(&mut self.child, signal)
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 4 + size..];
    }
}

/// The `tessera` binary, built once per test process next to the enclave binary.
pub fn tessera_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let enclave_bin = Path::new(env!("CARGO_BIN_EXE_tessera-enclave"));
    let out_dir = enclave_bin.parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    BUILD.call_once(|| {
        let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cmd.current_dir(root).args([
            "build",
            "--locked",
            "-p",
            "operator-tui",
            "--bin",
            "tessera",
        ]);
        if out_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "cargo build -p operator-tui failed"
        );
    });
    out_dir.join("tessera")
}
