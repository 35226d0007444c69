//! `tessera bundle`: pack, unpack and inspect bundles, and move them as QR codes.
//!
//! Exit codes: 0 done; 1 the input was refused (not a bundle, damaged, a corrupt part, a part of
//! another bundle, too few parts); 2 usage or I/O (unreadable input, existing output).

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use airgap_bundle::frames::{FrameSource, ImageDir, Y4mVideo};
use airgap_bundle::parts::{self, PartEncoder};
use airgap_bundle::qr::{self, QrFrame};
use airgap_bundle::receive::{self, Flow, Outcome, ReceiveError, Reception, ReceptionStatus};
use airgap_bundle::usb::{self, UsbError};
use airgap_bundle::{Bundle, BundleKind, Fingerprint, MAX_BUNDLE_BYTES, Metadata};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Put a file into a bundle (`--kind file` keeps its name; other kinds wrap ceremony objects).
    Pack(PackArgs),
    /// Write a bundle's payload out: the original file for a file bundle.
    Unpack(UnpackArgs),
    /// Show kind, version, size, fingerprint and labels, after checking the bundle.
    Inspect(InspectArgs),
    /// Show a bundle as QR codes: animated in the terminal, as UR text, or as PNG frames.
    Qr(QrArgs),
    /// Reassemble a bundle from UR text lines or QR images, in any order, with gaps.
    Scan(ScanArgs),
}

#[derive(clap::Args)]
pub struct PackArgs {
    /// What the bundle carries.
    #[arg(long, value_parser = parse_kind, default_value = "file")]
    pub kind: BundleKind,
    /// The file to pack.
    pub input: PathBuf,
    /// Output file, or an existing folder to get a generated name.
    #[arg(short, long)]
    pub output: PathBuf,
    /// File name recorded in the bundle (default: the input's name; file bundles only).
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace label.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Member alias label.
    #[arg(long)]
    pub member: Option<String>,
    /// Manifest nonce label.
    #[arg(long)]
    pub nonce: Option<u64>,
}

#[derive(clap::Args)]
pub struct UnpackArgs {
    pub bundle: PathBuf,
    /// Output file, or an existing folder to use the name recorded in a file bundle.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    pub bundle: PathBuf,
    /// Print a JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct QrArgs {
    pub bundle: PathBuf,
    /// Print UR parts, one per line, instead of animating.
    #[arg(long)]
    pub text: bool,
    /// Write each frame as a PNG image into this folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub png_dir: Option<PathBuf>,
    /// Bytes of bundle per frame (density). Default: one static code up to 320 bytes, else 100,
    /// reduced if the terminal is too small.
    #[arg(long, value_name = "BYTES")]
    pub fragment: Option<usize>,
    /// Frames per second when animating.
    #[arg(long, default_value_t = qr::DEFAULT_FPS, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub fps: u32,
    /// Parts to print or write: the first pass is the fragments themselves, then repair parts.
    /// Default: one pass.
    #[arg(long, value_name = "N")]
    pub parts: Option<usize>,
    /// Stop animating after this many frames (default: until a key is pressed).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["text", "images", "frames", "video", "camera"])))]
pub struct ScanArgs {
    /// File of UR text lines, or `-` for standard input, read as it arrives and left as soon as
    /// the bundle is complete (keyboard-wedge scanners, `zbarcam --raw`, paste).
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// Photos or screenshots of QR frames (PNG or JPEG).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// A folder of QR frame pictures (PNG or JPEG), read in name order.
    #[arg(long, value_name = "DIR")]
    pub frames: Option<PathBuf>,
    /// A recorded video in YUV4MPEG2 form (`ffmpeg -i clip.mp4 -pix_fmt gray clip.y4m`).
    #[arg(long, value_name = "FILE")]
    pub video: Option<PathBuf>,
    /// Scan from a webcam (V4L2); stops by itself when the bundle is complete, Ctrl-C aborts.
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "/dev/video0")]
    pub camera: Option<String>,
    /// Output file, or an existing folder to get a generated name.
    #[arg(short, long)]
    pub output: PathBuf,
}

fn parse_kind(s: &str) -> Result<BundleKind, String> {
    s.parse().map_err(|_| {
        let names: Vec<&str> = BundleKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("expected one of: {}", names.join(", "))
    })
}

/// A failed command: exit 1 for refused input, 2 for usage or I/O.
struct Failure {
    exit: u8,
    message: String,
}

impl Failure {
    fn refused(message: impl Into<String>) -> Self {
        Self {
            exit: 1,
            message: message.into(),
        }
    }

    fn io(message: impl Into<String>) -> Self {
        Self {
            exit: 2,
            message: message.into(),
        }
    }
}

impl From<UsbError> for Failure {
    fn from(e: UsbError) -> Self {
        match e {
            UsbError::Bundle { .. } => Self::refused(e.to_string()),
            _ => Self::io(e.to_string()),
        }
    }
}

pub fn run(cmd: Command) -> ExitCode {
    let (name, result) = match cmd {
        Command::Pack(a) => ("pack", pack(&a)),
        Command::Unpack(a) => ("unpack", unpack(&a)),
        Command::Inspect(a) => ("inspect", inspect(&a)),
        Command::Qr(a) => ("qr", show_qr(&a)),
        Command::Scan(a) => ("scan", scan(&a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("tessera bundle {name}: {}", f.message);
            ExitCode::from(f.exit)
        }
    }
}

fn pack(a: &PackArgs) -> Result<(), Failure> {
    let contents = usb::read_limited(&a.input, airgap_bundle::MAX_PAYLOAD_BYTES)
        .map_err(|e| Failure::io(e.to_string()))?;
    let file_name = match (&a.name, a.kind) {
        (Some(n), _) => Some(n.clone()),
        (None, BundleKind::File) => a
            .input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        (None, _) => None,
    };
    let meta = Metadata {
        namespace: a.namespace.clone(),
        member: a.member.clone(),
        nonce: a.nonce,
        file_name,
    };
    let bundle =
        Bundle::new(a.kind, meta, contents).map_err(|e| Failure::refused(e.to_string()))?;
    let path = write_bundle(&a.output, &bundle)?;
    println!("wrote {}: {}", path.display(), bundle.summary());
    Ok(())
}

/// Into a folder under the generated name, or at exactly the given path.
fn write_bundle(output: &Path, bundle: &Bundle) -> Result<PathBuf, Failure> {
    if output.is_dir() {
        Ok(usb::write_bundle(output, bundle)?)
    } else {
        usb::write_bundle_to(output, bundle)?;
        Ok(output.to_owned())
    }
}

fn read_bundle(path: &Path) -> Result<Bundle, Failure> {
    let bytes = usb::read_limited(path, MAX_BUNDLE_BYTES)?;
    Bundle::decode(&bytes).map_err(|e| {
        Failure::refused(format!(
            "{}: {e} (file fingerprint {})\nnext: {}",
            path.display(),
            Fingerprint::of(&bytes),
            e.next_step()
        ))
    })
}

fn unpack(a: &UnpackArgs) -> Result<(), Failure> {
    let bundle = read_bundle(&a.bundle)?;
    let target = if a.output.is_dir() {
        let Some(name) = &bundle.meta().file_name else {
            return Err(Failure::io(format!(
                "{} bundle has no file name; give an output file, not a folder",
                bundle.kind()
            )));
        };
        // The name was checked to be one path component when the bundle was decoded.
        a.output.join(name)
    } else {
        a.output.clone()
    };
    let summary = bundle.summary();
    usb::write_new_file(&target, bundle.payload())?;
    println!(
        "wrote {} ({} bytes) from {summary}",
        target.display(),
        summary.payload_len
    );
    Ok(())
}

fn inspect(a: &InspectArgs) -> Result<(), Failure> {
    let s = read_bundle(&a.bundle)?.summary();
    if a.json {
        let report = json!({
            "kind": s.kind.as_str(),
            "version": s.version,
            "size": s.size,
            "fingerprint": s.fingerprint.to_string(),
            "namespace": s.meta.namespace,
            "member": s.meta.member,
            "nonce": s.meta.nonce,
            "file_name": s.meta.file_name,
            "payload_size": s.payload_len,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    let dash = || "-".to_owned();
    println!("kind         {} ({})", s.kind, s.kind.description());
    println!("version      {}", s.version);
    println!("size         {} bytes", s.size);
    println!("fingerprint  {}", s.fingerprint);
    println!(
        "namespace    {}",
        s.meta.namespace.clone().unwrap_or_else(dash)
    );
    println!(
        "member       {}",
        s.meta.member.clone().unwrap_or_else(dash)
    );
    println!(
        "nonce        {}",
        s.meta.nonce.map_or_else(dash, |n| n.to_string())
    );
    println!(
        "file name    {}",
        s.meta.file_name.clone().unwrap_or_else(dash)
    );
    println!("payload      {} bytes", s.payload_len);
    Ok(())
}

fn encoder_for(bytes: &[u8], fragment: Option<usize>) -> Result<PartEncoder, Failure> {
    match fragment {
        Some(f) => PartEncoder::new(bytes, f),
        None => PartEncoder::with_defaults(bytes),
    }
    .map_err(|e| Failure::io(e.to_string()))
}

/// An encoder whose frames fit `cols` × `rows` terminal cells: the requested (or default)
/// density when it fits, else the densest that does (returned as the reduced fragment size).
/// An explicit `fragment` that does not fit is an error naming the one that would.
pub fn encoder_fitting(
    bytes: &[u8],
    fragment: Option<usize>,
    cols: usize,
    rows: usize,
) -> Result<(PartEncoder, Option<usize>), String> {
    let size = fragment.unwrap_or(parts::DEFAULT_FRAGMENT_BYTES);
    let encoder = encoder_for(bytes, fragment).map_err(|f| f.message)?;
    if frames_fit(&encoder, bytes, size, cols, rows) {
        return Ok((encoder, None));
    }
    let Some(f) = qr::max_fragment_for_terminal(cols, rows) else {
        return Err(format!(
            "the terminal ({cols}×{rows} free) is too small for a QR code; enlarge it or use the USB file"
        ));
    };
    if fragment.is_some() {
        return Err(format!(
            "frames of {size} bytes do not fit this terminal ({cols}×{rows} free); use --fragment {f} or enlarge it"
        ));
    }
    Ok((encoder_for(bytes, Some(f)).map_err(|e| e.message)?, Some(f)))
}

fn show_qr(a: &QrArgs) -> Result<(), Failure> {
    let bundle = read_bundle(&a.bundle)?;
    let bytes = bundle.encode();
    if !a.text && a.png_dir.is_none() {
        return animate(a, &bundle, &bytes);
    }
    let mut encoder = encoder_for(&bytes, a.fragment)?;
    let count = a.parts.unwrap_or_else(|| encoder.fragment_count());
    let parts: Vec<String> = (0..count).map(|_| encoder.next_part()).collect();
    if a.text {
        let mut out = std::io::stdout().lock();
        for p in &parts {
            writeln!(out, "{p}").map_err(|e| Failure::io(format!("stdout: {e}")))?;
        }
    }
    if let Some(dir) = &a.png_dir {
        std::fs::create_dir_all(dir).map_err(|e| Failure::io(format!("{}: {e}", dir.display())))?;
        let mut version = 0;
        for (i, p) in parts.iter().enumerate() {
            let frame = QrFrame::encode(p).map_err(|e| Failure::io(e.to_string()))?;
            version = version.max(frame.version());
            let path = dir.join(format!("frame-{:04}.png", i + 1));
            usb::write_new_file(&path, &frame.png(qr::PNG_MODULE_PIXELS))?;
        }
        eprintln!(
            "wrote {} frame{} (QR version {version}, {} fragment{}) to {}",
            parts.len(),
            if parts.len() == 1 { "" } else { "s" },
            encoder.fragment_count(),
            if encoder.fragment_count() == 1 {
                ""
            } else {
                "s"
            },
            dir.display()
        );
    }
    Ok(())
}

/// Restores the terminal however the animation ends, including by panic.
struct TerminalGuard {
    raw: bool,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        let _ = write!(out, "\x1b[0m\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        if self.raw {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

fn animate(a: &QrArgs, bundle: &Bundle, bytes: &[u8]) -> Result<(), Failure> {
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if !interactive && a.frames.is_none() {
        return Err(Failure::io(
            "not a terminal: use --text, --png-dir, or bound the animation with --frames",
        ));
    }
    let (cols, rows) =
        crossterm::terminal::size().map_or((80, 24), |(c, r)| (usize::from(c), usize::from(r)));
    // Two rows below the code for the status line.
    let avail_rows = rows.saturating_sub(2);
    let (mut encoder, reduced) =
        encoder_fitting(bytes, a.fragment, cols, avail_rows).map_err(Failure::io)?;
    let note = reduced
        .map(|f| format!(" · density reduced to {f} B to fit"))
        .unwrap_or_default();

    let _guard = TerminalGuard {
        raw: interactive && crossterm::terminal::enable_raw_mode().is_ok(),
    };
    let mut out = std::io::stdout();
    let _ = write!(out, "\x1b[?1049h\x1b[?25l\x1b[2J");
    let period = Duration::from_secs_f64(1.0 / f64::from(a.fps));
    let fingerprint = bundle.fingerprint();
    let mut shown = 0u64;
    loop {
        if a.frames.is_some_and(|n| shown >= n) {
            break;
        }
        let started = Instant::now();
        let part = encoder.next_part();
        let frame = QrFrame::encode(&part).map_err(|e| Failure::io(e.to_string()))?;
        let lines = frame
            .terminal_lines(cols, avail_rows)
            .ok_or_else(|| Failure::io("the terminal shrank below the code's size"))?;
        let mut screen = String::from("\x1b[H");
        for line in &lines {
            // Black on white regardless of the terminal's theme; scanners expect dark modules.
            screen.push_str("\x1b[38;5;16;48;5;231m");
            screen.push_str(line);
            screen.push_str("\x1b[0m\x1b[K\r\n");
        }
        let _ = write!(
            screen,
            "\x1b[K{} bundle {fingerprint} · frame {} · {} fragment{} · QR v{} · {} fps{note} · any key stops\x1b[K",
            bundle.kind(),
            shown + 1,
            encoder.fragment_count(),
            if encoder.fragment_count() == 1 {
                ""
            } else {
                "s"
            },
            frame.version(),
            a.fps,
        );
        write!(out, "{screen}")
            .and_then(|()| out.flush())
            .map_err(|e| Failure::io(format!("stdout: {e}")))?;
        shown += 1;
        let wait = period.saturating_sub(started.elapsed());
        if interactive {
            if key_pressed(wait) {
                break;
            }
        } else {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// Whether every frame of the stream fits: a single-part code is checked as is; for a stream,
/// the largest part header the animation can reach.
fn frames_fit(
    encoder: &PartEncoder,
    bytes: &[u8],
    fragment: usize,
    cols: usize,
    rows: usize,
) -> bool {
    let probe = if encoder.is_single_part() {
        parts::encode_parts(bytes, bytes.len().max(parts::MIN_FRAGMENT_BYTES), 1)
            .ok()
            .and_then(|p| p.into_iter().next())
            .unwrap_or_default()
    } else {
        "A".repeat(qr::part_chars_bound(fragment))
    };
    QrFrame::encode(&probe).is_ok_and(|f| f.terminal_lines(cols, rows).is_some())
}

fn key_pressed(wait: Duration) -> bool {
    use crossterm::event::{Event, KeyEventKind, poll, read};
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll(left) {
            Ok(true) => {
                if let Ok(Event::Key(k)) = read()
                    && k.kind == KeyEventKind::Press
                {
                    return true;
                }
            }
            Ok(false) => return false,
            // No event source: behave like a plain timer.
            Err(_) => {
                std::thread::sleep(left);
                return false;
            }
        }
    }
}

/// Reports a scan on standard error: a live line on a terminal, and each refusal (not repeating
/// the same message frame after frame, as a camera would).
struct Progress {
    live: bool,
    last_refusal: Option<String>,
}

impl Progress {
    fn new() -> Self {
        Self {
            live: std::io::stderr().is_terminal(),
            last_refusal: None,
        }
    }

    fn update(&mut self, label: &str, outcome: &Outcome, status: &ReceptionStatus) {
        if let Outcome::Rejected { message, .. } = outcome
            && self.last_refusal.as_deref() != Some(message.as_str())
        {
            if self.live {
                eprint!("\r\x1b[K");
            }
            eprintln!("{label}: {message}; ignored");
            self.last_refusal = Some(message.clone());
        }
        if self.live {
            eprint!("\r{}\x1b[K", status_line(status));
        }
    }

    fn done(&self, status: &ReceptionStatus) {
        if self.live {
            eprintln!();
        } else if status.frames > 0 {
            eprintln!("{}", status_line(status));
        }
    }
}

/// `[############--------] 31 of 51 fragments' worth, 61% · 40 parts · 70 frames, 9 missed ·
/// rejected: none · request bundle (unverified)`.
fn status_line(s: &ReceptionStatus) -> String {
    const WIDTH: usize = 20;
    let filled = (s.percent() * WIDTH / 100).min(WIDTH);
    let kind = s.kind.map_or(String::new(), |k| {
        if s.progress.complete {
            format!(" · {k} bundle")
        } else {
            format!(" · {k} bundle (unverified)")
        }
    });
    format!(
        "[{}{}] {} · {} parts · {} frames, {} missed · rejected: {}{kind}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        s.progress_line(),
        s.parts_seen,
        s.frames,
        s.missed,
        s.rejected_line(),
    )
}

fn refused(e: ReceiveError) -> Failure {
    match e {
        ReceiveError::Source(e) => Failure::io(e.to_string()),
        ReceiveError::Invalid(ref b) => Failure::refused(format!("{e}\nnext: {}", b.next_step())),
        e => Failure::refused(e.to_string()),
    }
}

fn scan(a: &ScanArgs) -> Result<(), Failure> {
    let mut progress = Progress::new();
    let mut last = ReceptionStatus::default();
    let result = if let Some(source) = &a.text {
        scan_text(source, &mut progress, &mut last)
    } else if !a.images.is_empty() {
        scan_images(&a.images, &mut progress, &mut last)
    } else {
        let mut source: Box<dyn FrameSource> = if let Some(dir) = &a.frames {
            Box::new(ImageDir::open(dir).map_err(|e| Failure::io(e.to_string()))?)
        } else if let Some(video) = &a.video {
            Box::new(Y4mVideo::open(video).map_err(|e| Failure::io(e.to_string()))?)
        } else {
            open_camera(a.camera.as_deref().unwrap_or("/dev/video0"))?
        };
        if progress.live {
            eprintln!("reading {}", source.describe());
        }
        let mut frame = 0usize;
        receive::scan_frames(source.as_mut(), |outcome, status| {
            frame += 1;
            progress.update(&format!("frame {frame}"), outcome, status);
            last = status.clone();
            Flow::Continue
        })
    };
    progress.done(&last);
    // Only a bundle that passed every check reaches this point; nothing was written before.
    let bundle = result.map_err(refused)?;
    let path = write_bundle(&a.output, &bundle)?;
    println!("wrote {}: {}", path.display(), bundle.summary());
    Ok(())
}

#[cfg(target_os = "linux")]
fn open_camera(device: &str) -> Result<Box<dyn FrameSource>, Failure> {
    let camera = airgap_bundle::frames::Camera::open(device).map_err(|e| {
        Failure::io(format!(
            "{e}\nnext: check the device with `v4l2-ctl --list-devices`, or scan with \
             `zbarcam --raw | tessera bundle scan --text - -o DIR`"
        ))
    })?;
    Ok(Box::new(camera))
}

#[cfg(not(target_os = "linux"))]
fn open_camera(_device: &str) -> Result<Box<dyn FrameSource>, Failure> {
    Err(Failure::io(
        "camera scanning needs Linux (V4L2); use --frames, --video or --text",
    ))
}

/// The listed pictures, each a frame; one that cannot be read is named and counts as missed.
fn scan_images(
    paths: &[PathBuf],
    progress: &mut Progress,
    last: &mut ReceptionStatus,
) -> Result<Bundle, ReceiveError> {
    let mut reception = Reception::new();
    for path in paths {
        if reception.is_complete() {
            break;
        }
        let image = usb::read_limited(path, airgap_bundle::frames::MAX_IMAGE_FILE_BYTES as usize)
            .map_err(|e| e.to_string())
            .and_then(|bytes| qr::load_gray(&bytes).map_err(|e| e.to_string()));
        let outcome = match image {
            Ok(image) => reception.feed_frame(&image),
            Err(e) => {
                eprintln!("warning: {}: {e}; skipped", path.display());
                continue;
            }
        };
        if outcome == Outcome::Missed {
            eprintln!("warning: {}: no readable QR code; skipped", path.display());
        }
        progress.update(&path.display().to_string(), &outcome, reception.status());
        last.clone_from(reception.status());
    }
    reception.finish()
}

/// Longest text line taken; a longer one is refused as too long without being held.
const MAX_LINE: usize = parts::MAX_PART_CHARS + 2;

/// UR text, line by line as it arrives, until the bundle is complete or the input ends.
fn scan_text(
    source: &Path,
    progress: &mut Progress,
    last: &mut ReceptionStatus,
) -> Result<Bundle, ReceiveError> {
    let name = display(source);
    let reader: Box<dyn BufRead> = if source == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(source).map_err(|e| io_error(&name, e))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut reader = reader;
    let mut reception = Reception::new();
    let mut line = Vec::new();
    let mut n = 0usize;
    while !reception.is_complete() {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error(&name, e))?;
        if read == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && read == MAX_LINE {
            // Skip the rest of an overlong line; what was read is refused as too long.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let more = (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)
                    .map_err(|e| io_error(&name, e))?;
                if more == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        n += 1;
        // Non-UTF-8 bytes cannot be part of a UR; they surface as a "not a UR" refusal.
        let text = String::from_utf8_lossy(&line);
        let outcome = reception.feed_text(&text);
        progress.update(&format!("{name} line {n}"), &outcome, reception.status());
        last.clone_from(reception.status());
    }
    reception.finish()
}

fn io_error(name: &str, e: std::io::Error) -> ReceiveError {
    ReceiveError::Source(airgap_bundle::frames::FrameError::Io {
        path: name.to_owned(),
        source: e,
    })
}

fn display(source: &Path) -> String {
    if source == Path::new("-") {
        "stdin".into()
    } else {
        source.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_accepted_on_the_command_line() {
        for kind in BundleKind::ALL {
            assert_eq!(parse_kind(kind.as_str()), Ok(kind));
        }
        assert!(parse_kind("widget").unwrap_err().contains("share"));
    }
}
