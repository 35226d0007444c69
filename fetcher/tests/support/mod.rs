//! Harness for the fetch tests: a test CA and a local HTTPS server that trusts nothing of the
//! fetcher, the real `tessera-egress` and `tessera-fetcher` processes on unix sockets, a hostile
//! egress proxy that speaks the protocol but lies, and an OIDC-like issuer.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::Duration;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tessera_core::cbor;
use tessera_core::egress::{EgressErrorCode, EgressRequest, EgressResponse, MAX_EGRESS_FRAME};
use tessera_core::protocol::{read_frame, write_frame};
use tessera_core::quorum::QuorumSeed;
use tessera_core::transport::Address;

/// How long any single step may take before a test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(30);

/// A test CA and leaf certificates it issues.
pub struct TestCa {
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names and IP addresses) and its key.
    pub fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        for n in names {
            params.subject_alt_names.push(match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            });
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone(), self.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// The `--extra-root` argument that pins this CA.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.der.as_ref())
    }
}

/// What the test server answers for a path: status, content type, body.
pub type Routes = Arc<dyn Fn(&str) -> (u16, &'static str, Vec<u8>) + Send + Sync>;

/// A deterministic body of `n` bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36])
        .collect()
}

/// Paths every test server answers.
pub fn default_routes() -> Routes {
    Arc::new(|path: &str| match path {
        "/hello" => (200, "text/plain", b"hello from the test server".to_vec()),
        "/data100k" => (200, "application/octet-stream", pattern(100 * 1024)),
        "/big" => (200, "application/octet-stream", pattern(2 << 20)),
        "/chunked" => (200, "text/plain", pattern(30_000)),
        _ => (404, "text/plain", b"not found".to_vec()),
    })
}

/// A local HTTPS server on 127.0.0.1 with a certificate from a test CA; one thread per
/// connection, one request per connection, then `close_notify`.
pub struct HttpsServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
}

impl HttpsServer {
    pub fn start(ca: &TestCa, names: &[&str], routes: Routes) -> Self {
        let (chain, key) = ca.leaf(names);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let config = Arc::clone(&config);
                let routes = Arc::clone(&routes);
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    let _ = serve_one(&config, tcp, &routes, &counter);
                });
            }
        });
        Self { addr, requests }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

fn serve_one(
    config: &Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    routes: &Routes,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(STEP))?;
    let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
    let (status, ctype, body) = routes(&path);
    if path == "/chunked" {
        write!(
            tls,
            "HTTP/1.1 {status} OK\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )?;
        for part in body.chunks(1000) {
            write!(tls, "{:x}\r\n", part.len())?;
            tls.write_all(part)?;
            tls.write_all(b"\r\n")?;
        }
        tls.write_all(b"0\r\n\r\n")?;
    } else {
        write!(
            tls,
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nETag: \"t1\"\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        tls.write_all(&body)?;
    }
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

/// Reads `out` until a line starting with `prefix`, for at most [`STEP`]; then keeps draining
/// it in the background. Returns the line.
pub fn readiness(out: impl Read + Send + 'static, prefix: &str) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(out).lines() {
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

/// `tessera-egress` or `tessera-fetcher`, built once per test process into Cargo's target
/// folder (beside this test binary's `deps/`), so any crate's tests can run them.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().unwrap();
    let out_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(root).args([
            "build",
            "--locked",
            "-p",
            "tessera-relay",
            "--bin",
            "tessera-egress",
            "-p",
            "tessera-fetcher",
            "--bin",
            "tessera-fetcher",
        ]);
        if out_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().expect("cargo build").success(),
            "building tessera-egress and tessera-fetcher failed"
        );
    });
    out_dir.join(name)
}

/// The `tessera` CLI, built once per test process beside the other binaries.
pub fn tessera_binary() -> PathBuf {
    static BUILD: Once = Once::new();
    let out = binary("tessera-fetcher");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(root).args([
            "build",
            "--locked",
            "-p",
            "operator-tui",
            "--bin",
            "tessera",
        ]);
        if out
            .parent()
            .unwrap()
            .file_name()
            .is_some_and(|n| n == "release")
        {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().expect("cargo build").success(),
            "building tessera failed"
        );
    });
    out.with_file_name("tessera")
}

/// A child process killed when dropped, with its log file.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut cmd: Command, ready: &str, log: PathBuf, stdin: Option<&[u8]>) -> Proc {
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(bytes).unwrap();
    }
    let ready = readiness(child.stdout.take().unwrap(), ready);
    let proc = Proc { child, log };
    if let Err(e) = ready {
        panic!("{cmd:?} did not become ready: {e}\n{}", proc.log_text());
    }
    proc
}

/// `tessera-egress` on `dir/egress.sock` allowing `allow`.
pub fn start_egress(dir: &Path, allow: &[String], extra: &[&str]) -> (Proc, Address) {
    let sock = dir.join("egress.sock");
    let mut cmd = Command::new(binary("tessera-egress"));
    cmd.arg("--listen").arg(format!("unix:{}", sock.display()));
    for a in allow {
        cmd.arg("--allow").arg(a);
    }
    cmd.args(extra);
    let proc = spawn(
        cmd,
        "tessera-egress: listening on",
        dir.join("egress.log"),
        None,
    );
    (proc, Address::Unix(sock))
}

/// `tessera-fetcher` on `dir/<tag>.sock`, handed `seed` on standard input as the enclave's pivot
/// hands it.
pub fn start_fetcher(
    dir: &Path,
    tag: &str,
    proxy: &Address,
    allow: &[String],
    ca: &TestCa,
    seed: &QuorumSeed,
    extra: &[&str],
) -> (Proc, Address) {
    let sock = dir.join(format!("{tag}.sock"));
    let mut cmd = Command::new(binary("tessera-fetcher"));
    cmd.env_clear()
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .arg("--proxy")
        .arg(proxy.to_string())
        .arg("--extra-root")
        .arg(ca.base64());
    for a in allow {
        cmd.arg("--allow").arg(a);
    }
    cmd.args(extra);
    let proc = spawn(
        cmd,
        "tessera-fetcher: listening on",
        dir.join(format!("{tag}.log")),
        Some(seed.as_bytes()),
    );
    (proc, Address::Unix(sock))
}

/// How a hostile proxy lies.
#[derive(Debug, Clone, Copy)]
pub enum Lie {
    /// Connects wherever asked, honestly (the control).
    None,
    /// Connects to this port on 127.0.0.1 instead of the requested destination.
    RouteTo(u16),
    /// Flips one bit of the server's bytes at this offset.
    FlipByte(usize),
    /// Reports the end of the stream after this many bytes from the server.
    Truncate(usize),
    /// Stops answering after this many bytes from the server.
    Stall(usize),
}

/// An egress proxy run by a hostile host: it speaks the protocol and lies as told. It counts the
/// channels it accepted, so a test can show a refused fetch never reached it.
pub struct HostileProxy {
    pub addr: Address,
    pub channels: Arc<AtomicUsize>,
    pub opened: Arc<Mutex<Vec<String>>>,
}

impl HostileProxy {
    pub fn start(dir: &Path, lie: Lie) -> Self {
        let sock = dir.join("hostile.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let channels = Arc::new(AtomicUsize::new(0));
        let opened = Arc::new(Mutex::new(Vec::new()));
        let (c, o) = (Arc::clone(&channels), Arc::clone(&opened));
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let o = Arc::clone(&o);
                std::thread::spawn(move || hostile_channel(s, lie, &o));
            }
        });
        Self {
            addr: Address::Unix(sock),
            channels,
            opened,
        }
    }
}

fn hostile_channel(mut s: std::os::unix::net::UnixStream, lie: Lie, opened: &Mutex<Vec<String>>) {
    let mut tcp: Option<TcpStream> = None;
    let mut from_server = 0usize;
    loop {
        let Ok(bytes) = read_frame(&mut s, MAX_EGRESS_FRAME) else {
            return;
        };
        let Ok(req) = EgressRequest::decode(&bytes) else {
            return;
        };
        let resp = match req {
            EgressRequest::Open { host, port } => {
                opened.lock().unwrap().push(format!("{host}:{port}"));
                let target = match lie {
                    Lie::RouteTo(p) => format!("127.0.0.1:{p}"),
                    _ => format!("{host}:{port}"),
                };
                match TcpStream::connect(target) {
                    Ok(t) => {
                        tcp = Some(t);
                        EgressResponse::Opened { id: 1 }
                    }
                    Err(e) => EgressResponse::error(EgressErrorCode::Unreachable, e.to_string()),
                }
            }
            EgressRequest::Write { data, .. } => {
                tcp.as_mut().unwrap().write_all(&data).unwrap();
                EgressResponse::Written {
                    len: data.len() as u32,
                }
            }
            EgressRequest::Read { max, .. } => {
                if let Lie::Stall(n) = lie
                    && from_server >= n
                {
                    // Hold the channel open and never answer.
                    std::thread::sleep(Duration::from_hours(1));
                    return;
                }
                let mut buf = vec![0u8; max as usize];
                let mut k = tcp.as_mut().unwrap().read(&mut buf).unwrap_or(0);
                if let Lie::Truncate(n) = lie {
                    k = k.min(n.saturating_sub(from_server));
                }
                buf.truncate(k);
                if let Lie::FlipByte(at) = lie
                    && (from_server..from_server + k).contains(&at)
                {
                    buf[at - from_server] ^= 0x01;
                }
                from_server += k;
                EgressResponse::Data {
                    data: serde_bytes::ByteBuf::from(buf),
                }
            }
            EgressRequest::Close { .. } => EgressResponse::Closed,
        };
        if write_frame(&mut s, &cbor::encode(&resp)).is_err() {
            return;
        }
    }
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
