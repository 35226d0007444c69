//! `@ngraveio/bc-ur` 1.1.13, an independent Uniform Resources implementation, driven through
//! node and `tools/bc-ur-interop/harness.js` (one request a line, one answer a line).
//!
//! `make setup` installs node and the pinned package (`tools/bc-ur-interop/install.sh`); without
//! them this fails with that instruction instead of skipping.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// What bc-ur's decoder made of a list of parts.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Completed after `after` parts with this UR type and message.
    Complete {
        after: usize,
        ur_type: String,
        message: Vec<u8>,
    },
    /// Every part fed, not complete.
    Incomplete,
    /// The decoder refused or failed at part `part`.
    Error { part: usize, message: String },
}

pub struct BcUr {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

fn node_modules() -> PathBuf {
    let dir = std::env::var_os("TESSERA_BC_UR_DIR").map_or_else(
        || {
            let cache = std::env::var_os("XDG_CACHE_HOME").map_or_else(
                || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"),
                PathBuf::from,
            );
            cache.join("tessera/bc-ur-interop")
        },
        PathBuf::from,
    );
    dir.join("node_modules")
}

impl BcUr {
    pub fn start() -> Self {
        let modules = node_modules();
        assert!(
            modules.join("@ngraveio/bc-ur").is_dir(),
            "@ngraveio/bc-ur is not installed in {}; run `make setup` \
             (tools/bc-ur-interop/install.sh)",
            modules.display()
        );
        let harness =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/bc-ur-interop/harness.js");
        let mut child = Command::new("node")
            .arg(&harness)
            .env("NODE_PATH", &modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (scripts/ensure-deps.sh installs nodejs)");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut bc = Self {
            child,
            stdin,
            stdout,
        };
        assert_eq!(bc.request("version"), "1.1.13", "the pinned bc-ur version");
        bc
    }

    fn request(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().expect("open until drop");
        stdin.write_all(line.as_bytes()).expect("harness reads");
        stdin.write_all(b"\n").expect("harness reads");
        stdin.flush().expect("harness reads");
        let mut answer = String::new();
        let n = self.stdout.read_line(&mut answer).expect("harness answers");
        assert!(n > 0, "the bc-ur harness exited (see its stderr above)");
        answer.trim_end().to_owned()
    }

    /// Feeds `parts` in order to a fresh bc-ur decoder until it completes.
    pub fn decode(&mut self, parts: &[String]) -> Decoded {
        assert!(parts.iter().all(|p| !p.contains(' ') && !p.contains('\n')));
        let answer = self.request(&format!("decode {}", parts.join(" ")));
        let mut fields = answer.splitn(4, ' ');
        match fields.next() {
            Some("complete") => Decoded::Complete {
                after: fields.next().unwrap().parse().unwrap(),
                ur_type: fields.next().unwrap().to_owned(),
                message: hex::decode(fields.next().unwrap()).unwrap(),
            },
            Some("incomplete") => Decoded::Incomplete,
            Some("error") => Decoded::Error {
                part: fields.next().unwrap().parse().unwrap(),
                message: answer.splitn(3, ' ').nth(2).unwrap_or("").to_owned(),
            },
            _ => panic!("unexpected answer from the bc-ur harness: {answer}"),
        }
    }

    /// bc-ur's own encoder: the fragment count and its first `count` parts.
    #[allow(
        dead_code,
        reason = "the benchmark includes this module and only decodes"
    )]
    pub fn encode(
        &mut self,
        ur_type: &str,
        message: &[u8],
        fragment: usize,
        count: usize,
    ) -> (usize, Vec<String>) {
        let answer = self.request(&format!(
            "encode {ur_type} {} {fragment} {count}",
            hex::encode(message)
        ));
        let mut fields = answer.split(' ');
        let k = fields.next().unwrap().parse().unwrap();
        (k, fields.map(str::to_owned).collect())
    }
}

impl Drop for BcUr {
    fn drop(&mut self) {
        // Closing stdin ends the harness.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
