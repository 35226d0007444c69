//! Plumbing shared by the ceremony commands: failures with stable exit codes, file I/O with
//! limits and atomic writes, the trust anchor and validation time, and the relay client.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tessera_core::attestation::{self, TrustAnchor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A command's failure: exit 1 when a check refused something, 2 for usage or I/O.
#[derive(Debug)]
pub struct Failure {
    pub exit: u8,
    pub message: String,
}

impl Failure {
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            exit: 1,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: 2,
            message: message.into(),
        }
    }
}

pub type CmdResult = Result<(), Failure>;

/// Prints the failure with the command's name and turns it into the exit code.
pub fn finish(command: &str, result: CmdResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("tessera {command}: {}", f.message);
            let first_line = f.message.lines().next().unwrap_or_default();
            record(tessera_core::transcript::Record::new(
                command,
                format!(
                    "{}: {first_line}",
                    if f.exit == 1 { "refused" } else { "failed" }
                ),
            ));
            ExitCode::from(f.exit)
        }
    }
}

impl From<tessera_core::device::DeviceError> for Failure {
    fn from(e: tessera_core::device::DeviceError) -> Self {
        Failure::refused(format!("{e}\nhint: {}", e.hint()))
    }
}

/// Largest input file any ceremony command reads.
pub const MAX_INPUT: usize = 4 << 20;

/// How much of each kind of file the app reads from a USB stick, before parsing a byte.
pub mod limits {
    /// A bundle of any kind, a bare manifest or envelope, an attestation document: nothing a
    /// ceremony moves is larger than a bundle may be.
    pub const OBJECT: usize = airgap_bundle::MAX_BUNDLE_BYTES;
    /// A sealed share (`*.share.age`): one age stanza and a 33-byte share, well under 1 KiB.
    pub const SEALED_SHARE: usize = 64 * 1024;
}

pub fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    airgap_bundle::usb::read_limited(path, MAX_INPUT)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// Writes a new file atomically; never overwrites.
pub fn write_new(path: &Path, bytes: &[u8]) -> CmdResult {
    airgap_bundle::usb::write_new_file(path, bytes)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// The pinned AWS Nitro root, an explicitly pinned PEM (the dev enclave's root), or the
/// EMULATED trust mode (`--root EMULATED`, for QEMU's unsigned emulated enclave).
pub fn anchor(root: Option<&Path>) -> Result<TrustAnchor, Failure> {
    match root {
        None => Ok(attestation::aws_nitro_root_g1().clone()),
        Some(p) if p == Path::new(attestation::EMULATED_ROOT_ARG) => {
            eprintln!(
                "tessera: EMULATED trust mode: attestations are NOT signed; they prove nothing about Nitro hardware"
            );
            Ok(TrustAnchor::emulated())
        }
        Some(path) => TrustAnchor::from_pem(&read(path)?)
            .map_err(|e| Failure::usage(format!("--root {}: {e}", path.display()))),
    }
}

/// `now`, `doc` (the document's own unverified timestamp) or an RFC 3339 time.
pub fn validation_time(at: &str, document: &[u8]) -> Result<OffsetDateTime, Failure> {
    match at {
        "now" => Ok(OffsetDateTime::now_utc()),
        "doc" => attestation::unverified_timestamp(document)
            .map_err(|e| Failure::refused(format!("attestation: {e}"))),
        other => OffsetDateTime::parse(other, &Rfc3339).map_err(|e| {
            Failure::usage(format!(
                "--at {other:?}: expected now, doc or an RFC 3339 time ({e})"
            ))
        }),
    }
}

/// Times a request is sent when the relay keeps answering 429 `rate-limited` (its ration of
/// attestations and forward challenges is shared by every client), before giving up.
pub const RATE_LIMIT_ATTEMPTS: u32 = 6;
/// Longest wait honoured from a `Retry-After` header (the relay sends 1 s).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A blocking HTTP client for the relay. Error bodies are the relay's JSON `{error: {code,
/// message}}`, shown as such. A request the relay answers 429 is sent again after the
/// `Retry-After` it gives (a second if none), up to [`RATE_LIMIT_ATTEMPTS`] times in all; a 429 is
/// answered before the enclave is asked, so sending again never repeats anything.
pub struct Relay {
    base: String,
    agent: ureq::Agent,
}

impl Relay {
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_mins(1)))
            .build()
            .new_agent();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    fn check(
        &self,
        what: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>, Failure> {
        let mut resp = resp.map_err(|e| Failure::usage(format!("relay {}: {e}", self.base)))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(8 << 20)
            .read_to_vec()
            .map_err(|e| Failure::usage(format!("relay {what}: {e}")))?;
        if status == 200 {
            return Ok(body);
        }
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some(format!(
                    "{} ({})",
                    e.get("message")?.as_str()?,
                    e.get("code")?.as_str()?
                ))
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let exit = if status >= 500 { 2 } else { 1 };
        Err(Failure {
            exit,
            message: format!("{what}: relay answered {status}: {detail}"),
        })
    }

    /// Sends with `send` until the relay answers something other than 429 or the attempts run
    /// out, waiting what each 429's `Retry-After` asks (capped at [`MAX_RETRY_AFTER`]).
    fn with_retries(
        &self,
        what: &str,
        send: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>, Failure> {
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let resp = send();
            let limited = matches!(&resp, Ok(r) if r.status().as_u16() == 429);
            if !limited {
                return self.check(what, resp);
            }
            if attempt >= RATE_LIMIT_ATTEMPTS {
                return self.check(what, resp).map_err(|mut f| {
                    f.message = format!(
                        "{}; gave up after {attempt} attempts in {} s (the relay rations this request for all its clients together: try again later)",
                        f.message,
                        started.elapsed().as_secs()
                    );
                    f
                });
            }
            let wait = resp
                .as_ref()
                .ok()
                .and_then(|r| r.headers().get("retry-after"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .clamp(Duration::from_millis(100), MAX_RETRY_AFTER);
            eprintln!(
                "  … {what}: the relay is rationing this request (429 rate-limited); retrying in {} s (attempt {attempt} of {RATE_LIMIT_ATTEMPTS})",
                wait.as_secs_f64()
            );
            drop(resp);
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    pub fn get(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{path}", self.base);
        self.with_retries(path, || self.agent.get(&url).call())
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{path}", self.base);
        self.with_retries(path, || {
            self.agent
                .post(&url)
                .header("content-type", content_type)
                .send(body)
        })
    }

    /// Posts a CBOR object and decodes the enclave's CBOR response.
    pub fn post_cbor<T: serde::Serialize>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<tessera_core::protocol::Response, Failure> {
        let bytes = self.post(path, "application/cbor", &tessera_core::cbor::encode(value))?;
        tessera_core::protocol::Response::decode(&bytes)
            .map_err(|e| Failure::usage(format!("relay {path}: {e}")))
    }
}

/// Prints one check line, the way every ceremony command reports what it verified.
pub fn checked(what: impl std::fmt::Display) {
    println!("  ✓ {what}");
}

/// Where this session's transcript lives: `$TESSERA_TRANSCRIPT`, else
/// `~/.local/share/tessera/transcript.jsonl`.
#[must_use]
pub fn transcript_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_TRANSCRIPT") {
        return Some(p.into());
    }
    let home = std::env::var_os("HOME")?;
    let dir = std::path::PathBuf::from(home).join(".local/share/tessera");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("transcript.jsonl"))
}

/// Appends a line to the ceremony transcript. A transcript that cannot be written is reported
/// loudly; the action it describes has already happened and is not undone.
pub fn record(rec: tessera_core::transcript::Record) {
    let Some(path) = transcript_path() else {
        eprintln!("warning: no transcript written (set TESSERA_TRANSCRIPT or HOME)");
        return;
    };
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_default();
    if let Err(e) = tessera_core::transcript::append(&path, &now, rec) {
        eprintln!("warning: transcript {} not written: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::{RATE_LIMIT_ATTEMPTS, Relay};

    /// A relay on a real socket that answers the first `limited` requests 429 (`Retry-After:
    /// 0`) and then 200 `ok`; returns its address and the count of requests it saw.
    fn rationing_relay(limited: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = 0;
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                seen += 1;
                let answer = if seen <= limited {
                    "HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-type: application/json\r\ncontent-length: 55\r\nconnection: close\r\n\r\n{\"error\":{\"code\":\"rate-limited\",\"message\":\"try later\"}}"
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                };
                stream.write_all(answer.as_bytes()).unwrap();
                if seen > limited || seen >= RATE_LIMIT_ATTEMPTS as usize {
                    break;
                }
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn a_rationed_request_is_sent_again_until_it_is_served() {
        let (addr, relay) = rationing_relay(2);
        let body = Relay::new(&addr).get("/v1/attestation?nonce=00").unwrap();
        assert_eq!(body, b"ok");
        assert_eq!(relay.join().unwrap(), 3);
    }

    #[test]
    fn a_request_rationed_every_time_gives_up_and_says_why() {
        let (addr, relay) = rationing_relay(usize::MAX);
        let err = Relay::new(&addr).get("/v1/request-bundle").unwrap_err();
        assert!(
            err.message
                .contains(&format!("gave up after {RATE_LIMIT_ATTEMPTS} attempts")),
            "{}",
            err.message
        );
        assert_eq!(relay.join().unwrap(), RATE_LIMIT_ATTEMPTS as usize);
    }
}
