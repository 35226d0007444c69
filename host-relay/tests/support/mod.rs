//! Real processes for the relay tests: a dev `tessera-enclave` on a unix socket in a temporary
//! directory and `tessera-relay` on 127.0.0.1:0, both awaited on their readiness lines, plus a
//! minimal HTTP/1.1 client so the tests see exactly what goes over the wire.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Long enough for a cold start on a loaded machine, short enough that a hang fails the test.
const READY_TIMEOUT: Duration = Duration::from_mins(1);

/// `target/debug` (or whichever profile built this test): the test binary is in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary inside target/<profile>/deps")
        .to_path_buf()
}

/// The enclave is another package's binary, so Cargo does not build it for these tests.
pub fn enclave_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "--locked", "-p", "tessera-enclave"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("running cargo build -p tessera-enclave");
        assert!(status.success(), "cargo build -p tessera-enclave failed");
    });
    profile_dir().join("tessera-enclave")
}

/// Spawns `cmd`, waits for a stdout line starting with `prefix` and returns the rest of it.
fn spawn_ready(mut cmd: Command, prefix: &'static str, log: &Path) -> (Child, String) {
    let log_file = std::fs::File::create(log).expect("log file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("spawning a test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    if let Ok(rest) = rx.recv_timeout(READY_TIMEOUT) {
        return (child, rest);
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("no readiness line {prefix:?}; stderr:\n{log}");
}

pub struct Enclave {
    child: Child,
    pub socket: PathBuf,
    /// The dev PCRs as JSON (`{"PCR0": hex, ...}`), for manifests this enclave will boot.
    pub pcrs: PathBuf,
}

static STARTS: AtomicUsize = AtomicUsize::new(0);

impl Enclave {
    /// A dev enclave listening on `socket` (replacing a stale socket file left by a killed one).
    pub fn start(socket: &Path) -> Self {
        let dir = socket.parent().expect("socket in a directory");
        // Each start writes a new dev root: the enclave refuses to overwrite one.
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let mut cmd = Command::new(enclave_bin());
        cmd.arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .arg("--dev")
            .arg("--dev-root-out")
            .arg(dir.join(format!("dev-root-{n}.pem")))
            .arg("--dev-pcrs-out")
            .arg(dir.join(format!("dev-pcrs-{n}.json")));
        let (child, _) = spawn_ready(
            cmd,
            "tessera-enclave: listening on ",
            &dir.join(format!("enclave-{n}.log")),
        );
        Self {
            child,
            socket: socket.to_owned(),
            pcrs: dir.join(format!("dev-pcrs-{n}.json")),
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Enclave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Relay {
    child: Child,
    pub addr: SocketAddr,
}

impl Relay {
    /// The relay on a free loopback port, with short timeouts so timeout tests stay quick.
    pub fn start(socket: &Path, body_timeout_secs: f64) -> Self {
        let dir = socket.parent().expect("socket in a directory");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera-relay"));
        cmd.args(["--listen", "127.0.0.1:0", "--enclave"])
            .arg(format!("unix:{}", socket.display()))
            .arg("--body-timeout")
            .arg(body_timeout_secs.to_string())
            .args(["--enclave-timeout", "20"])
            // One line per request in relay.log, whatever the caller's environment says.
            .env("RUST_LOG", "debug");
        let (child, url) = spawn_ready(cmd, "tessera-relay: listening on ", &dir.join("relay.log"));
        let addr = url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("readiness line has no http address: {url}"));
        Self { child, addr }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The `error.code` of a JSON error, after checking the status.
    pub fn error_code(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "{v}");
        v["error"]["code"].as_str().expect("error.code").to_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connecting to the relay");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
    let mut s = connect(addr);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n");
    if let Some(b) = body {
        head += "Content-Type: application/cbor\r\nContent-Length: ";
        head += &b.len().to_string();
        head += "\r\n";
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    read_reply(&mut s)
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None)
}

pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Reply {
    request(addr, "POST", path, Some(body))
}

/// Reads a whole response from a connection the server closes after it.
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    // A server that answers before the body is fully sent may reset the connection after the
    // response; what arrived before the reset is the answer.
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        assert!(body.len() >= len, "short body");
        body.truncate(len);
    }
    Reply {
        status,
        headers,
        body,
    }
}
