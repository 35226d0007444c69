//! Golden tests of `tessera bundle`: exit codes, stdout and stderr.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .unwrap()
}

fn tessera_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fixed file packed into a fixed bundle, so fingerprints are stable.
fn packed(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("notes.txt");
    fs::write(&input, "hello from the air-gapped laptop\n").unwrap();
    let out = dir.join("notes.tbundle");
    let o = tessera(&["bundle", "pack", "--kind", "file", s(&input), "-o", s(&out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    out
}

fn big_input(dir: &Path, len: usize) -> std::path::PathBuf {
    let input = dir.join("draft.toml");
    let text: String = (0..len)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    fs::write(&input, text).unwrap();
    let out = dir.join("draft.tbundle");
    let o = tessera(&["bundle", "pack", s(&input), "-o", s(&out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    out
}

#[test]
fn pack_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.txt");
    fs::write(&input, "hello from the air-gapped laptop\n").unwrap();
    let out = dir.path().join("notes.tbundle");
    let o = tessera(&["bundle", "pack", "--kind", "file", s(&input), "-o", s(&out)]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stdout(&o),
        format!(
            "wrote {}: file bundle 03eb d55e 9bb6 b672, file notes.txt, 133 bytes\n",
            out.display()
        )
    );

    let o = tessera(&["bundle", "inspect", s(&out)]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stdout(&o),
        "kind         file (file)
version      1
size         133 bytes
fingerprint  03eb d55e 9bb6 b672
namespace    -
member       -
nonce        -
file name    notes.txt
payload      33 bytes
"
    );

    let o = tessera(&["bundle", "inspect", "--json", s(&out)]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "kind": "file", "version": 1, "size": 133,
            "fingerprint": "03eb d55e 9bb6 b672",
            "namespace": null, "member": null, "nonce": null,
            "file_name": "notes.txt", "payload_size": 33
        })
    );
}

#[test]
fn pack_labels_and_generated_names() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("share.age");
    fs::write(&input, [1u8, 2, 3]).unwrap();
    let o = tessera(&[
        "bundle",
        "pack",
        "--kind",
        "share",
        s(&input),
        "-o",
        s(dir.path()),
        "--namespace",
        "payments",
        "--member",
        "alice",
        "--nonce",
        "7",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tbundle"))
        .collect();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("share-payments-alice-n7-"),
        "{}",
        names[0]
    );

    let o = tessera(&["bundle", "pack", "--kind", "widget", s(&input), "-o", "x"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("expected one of: request, share"));
}

#[test]
fn unpack_round_trip_and_no_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = packed(dir.path());
    let outdir = dir.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let o = tessera(&["bundle", "unpack", s(&bundle), "-o", s(&outdir)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        fs::read(outdir.join("notes.txt")).unwrap(),
        b"hello from the air-gapped laptop\n"
    );

    let o = tessera(&["bundle", "unpack", s(&bundle), "-o", s(&outdir)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("already exists and is never overwritten"),
        "{}",
        stderr(&o)
    );

    let input = dir.path().join("notes.txt");
    let o = tessera(&["bundle", "pack", s(&input), "-o", s(&bundle)]);
    assert_eq!(code(&o), 2);
}

#[test]
fn damaged_bundles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = packed(dir.path());
    let bytes = fs::read(&bundle).unwrap();

    let cut = dir.path().join("cut.tbundle");
    fs::write(&cut, &bytes[..50]).unwrap();
    let o = tessera(&["bundle", "inspect", s(&cut)]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("cut short"), "{}", stderr(&o));

    let altered = dir.path().join("altered.tbundle");
    let mut bad = bytes.clone();
    bad[60] ^= 1;
    fs::write(&altered, &bad).unwrap();
    let o = tessera(&["bundle", "inspect", s(&altered)]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
    assert!(stderr(&o).contains("file fingerprint"), "{}", stderr(&o));

    let o = tessera(&["bundle", "inspect", s(&dir.path().join("missing"))]);
    assert_eq!(code(&o), 2);
}

#[test]
fn qr_text_then_scan_text() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 4_000);
    let o = tessera(&["bundle", "qr", s(&bundle), "--text"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 1);
    assert!(lines.iter().all(|l| l.starts_with("ur:tessera-bundle/")));

    let parts = dir.path().join("parts.txt");
    fs::write(&parts, &text).unwrap();
    let out = dir.path().join("back.tbundle");
    let o = tessera(&["bundle", "scan", "--text", s(&parts), "-o", s(&out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&bundle).unwrap());

    // From stdin, upper case as a keyboard-wedge scanner may type it.
    let out2 = dir.path().join("back2.tbundle");
    let o = tessera_stdin(
        &["bundle", "scan", "--text", "-", "-o", s(&out2)],
        &text.to_ascii_uppercase(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("wrote "));
}

#[test]
fn scan_survives_loss_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 8_000);
    let one_pass = stdout(&tessera(&["bundle", "qr", s(&bundle), "--text"]))
        .lines()
        .count();
    let o = tessera(&[
        "bundle",
        "qr",
        s(&bundle),
        "--text",
        "--parts",
        &(2 * one_pass).to_string(),
    ]);
    let all: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(all.len(), 2 * one_pass);
    // Keep 60 %: drop every part whose index is 1 or 3 mod 5, then reverse.
    let mut kept: Vec<&String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 1 && i % 5 != 3)
        .map(|(_, p)| p)
        .collect();
    kept.reverse();
    let input: String = kept.iter().flat_map(|p| [p.as_str(), "\n"]).collect();
    let out = dir.path().join("back.tbundle");
    let o = tessera_stdin(&["bundle", "scan", "--text", "-", "-o", s(&out)], &input);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&bundle).unwrap());
}

#[test]
fn scan_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let a = big_input(dir.path(), 3_000);
    let b_dir = dir.path().join("b");
    fs::create_dir(&b_dir).unwrap();
    let b = big_input(&b_dir, 3_500);
    let pa = stdout(&tessera(&["bundle", "qr", s(&a), "--text"]));
    let pb = stdout(&tessera(&["bundle", "qr", s(&b), "--text"]));
    let out = dir.path().join("out.tbundle");

    // A part of another bundle.
    let mixed = format!("{}{}", pa.lines().next().unwrap(), "\n") + pb.lines().nth(1).unwrap();
    let o = tessera_stdin(&["bundle", "scan", "--text", "-", "-o", s(&out)], &mixed);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("stdin line 2: part belongs to another bundle"),
        "{}",
        stderr(&o)
    );

    // A corrupt part.
    let mut lines: Vec<String> = pa.lines().map(str::to_owned).collect();
    let l = lines[2].len();
    lines[2].replace_range(l - 4..l - 2, "zz");
    let o = tessera_stdin(
        &["bundle", "scan", "--text", "-", "-o", s(&out)],
        &lines.join("\n"),
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("stdin line 3: corrupt part"),
        "{}",
        stderr(&o)
    );

    // Too few parts.
    let few: String = pa.lines().take(3).flat_map(|l| [l, "\n"]).collect();
    let o = tessera_stdin(&["bundle", "scan", "--text", "-", "-o", s(&out)], &few);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("too few parts: 3 of"), "{}", stderr(&o));

    // Not a UR at all.
    let o = tessera_stdin(&["bundle", "scan", "--text", "-", "-o", s(&out)], "hello\n");
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not a UR"), "{}", stderr(&o));
    assert!(!out.exists());

    // Neither --text nor --images.
    let o = tessera(&["bundle", "scan", "-o", s(&out)]);
    assert_eq!(code(&o), 2);
}

#[test]
fn png_frames_then_scan_images() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 1_500);
    let frames = dir.path().join("frames");
    let o = tessera(&[
        "bundle",
        "qr",
        s(&bundle),
        "--png-dir",
        s(&frames),
        "--parts",
        "30",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote 30 frames"), "{}", stderr(&o));
    let mut files: Vec<String> = fs::read_dir(&frames)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 30);

    // Skip the first three frames: the mixed frames make up for them.
    let out = dir.path().join("back.tbundle");
    let mut args = vec!["bundle", "scan", "-o", s(&out), "--images"];
    args.extend(files[3..].iter().map(String::as_str));
    let o = tessera(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&bundle).unwrap());

    // Writing the frames again would overwrite them.
    let o = tessera(&["bundle", "qr", s(&bundle), "--png-dir", s(&frames)]);
    assert_eq!(code(&o), 2);
}

#[test]
fn small_bundle_is_one_static_code() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = packed(dir.path());
    let o = tessera(&["bundle", "qr", s(&bundle), "--text"]);
    assert_eq!(code(&o), 0);
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1);
    assert_eq!(text.matches('/').count(), 1, "{text}");
}

#[test]
fn terminal_animation_is_bounded_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 1_500);
    let o = tessera(&["bundle", "qr", s(&bundle), "--frames", "2", "--fps", "30"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let screen = stdout(&o);
    assert!(screen.contains("\x1b[H"));
    assert!(screen.contains("frame 2 ·"), "{screen}");
    assert!(screen.contains('▀') || screen.contains('▄'));

    let o = tessera(&["bundle", "qr", s(&bundle)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not a terminal"), "{}", stderr(&o));
}

/// PNG frames of `bundle` written by `tessera bundle qr --png-dir` into `dir`.
fn png_frames(bundle: &Path, dir: &Path, parts: usize) -> Vec<std::path::PathBuf> {
    let o = tessera(&[
        "bundle",
        "qr",
        s(bundle),
        "--png-dir",
        s(dir),
        "--parts",
        &parts.to_string(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn scan_text_from_stdin_stops_when_complete_without_waiting_for_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 5_000);
    let o = tessera(&["bundle", "qr", s(&bundle), "--text", "--parts", "200"]);
    let text = stdout(&o);
    let out = dir.path().join("back.tbundle");
    // As `zbarcam --raw` does: lines keep coming, the pipe never closes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["bundle", "scan", "--text", "-", "-o", s(&out)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"QR-Code:something else\n").unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scan still waiting for input after the bundle was complete"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("stdin line 1: not a UR"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(&out).unwrap(), fs::read(&bundle).unwrap());
}

#[test]
fn scan_a_frame_folder_with_a_stray_frame_of_another_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 3_000);
    let frames = dir.path().join("frames");
    let files = png_frames(&bundle, &frames, 60);
    let other_dir = dir.path().join("other");
    fs::create_dir(&other_dir).unwrap();
    let other = big_input(&other_dir, 2_500);
    let other_frames = png_frames(&other, &other_dir.join("frames"), 2);
    // Sorted between the 5th and 6th frames; drop every third frame of the real stream.
    fs::copy(&other_frames[1], frames.join("frame-0005b.png")).unwrap();
    for f in files.iter().step_by(3) {
        fs::remove_file(f).unwrap();
    }
    let out = dir.path().join("back.tbundle");
    let o = tessera(&["bundle", "scan", "--frames", s(&frames), "-o", s(&out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(": part belongs to another bundle"), "{err}");
    assert!(err.contains("; ignored"), "{err}");
    assert!(err.contains("rejected: 1 another bundle"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), fs::read(&bundle).unwrap());
}

#[test]
fn scan_writes_nothing_until_the_bundle_is_whole_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 3_000);
    let frames = dir.path().join("frames");
    let files = png_frames(&bundle, &frames, 30);
    for f in &files[5..] {
        fs::remove_file(f).unwrap();
    }
    let out = dir.path().join("back.tbundle");
    let o = tessera(&["bundle", "scan", "--frames", s(&frames), "-o", s(&out)]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("too few parts: 5 of"), "{}", stderr(&o));
    assert!(!out.exists());

    // A stream that is whole but is not a bundle.
    let junk: String = (0..2_000u32)
        .map(|i| char::from_digit(i % 36, 36).unwrap())
        .collect();
    let mut encoder = airgap_bundle::parts::PartEncoder::with_defaults(junk.as_bytes()).unwrap();
    let lines: String = (0..encoder.fragment_count() + 5)
        .map(|_| encoder.next_part() + "\n")
        .collect();
    let o = tessera_stdin(&["bundle", "scan", "--text", "-", "-o", s(&out)], &lines);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a valid bundle"), "{}", stderr(&o));
    assert!(!out.exists());

    // A folder that does not exist, a video that is not one, a camera that is not there.
    let o = tessera(&["bundle", "scan", "--frames", "/nonexistent", "-o", s(&out)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let fake = dir.path().join("clip.y4m");
    fs::write(&fake, "RIFF....AVI LIST\n").unwrap();
    let o = tessera(&["bundle", "scan", "--video", s(&fake), "-o", s(&out)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("YUV4MPEG2"), "{}", stderr(&o));
    let o = tessera(&[
        "bundle",
        "scan",
        "--camera",
        "/dev/null-camera",
        "-o",
        s(&out),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("zbarcam --raw"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn scan_a_y4m_video() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = big_input(dir.path(), 3_000);
    let frames = dir.path().join("frames");
    let files = png_frames(&bundle, &frames, 100);
    // Each picture centred on a common canvas, as a video has one frame size.
    let pictures: Vec<image::GrayImage> = files
        .iter()
        .map(|f| airgap_bundle::qr::load_gray(&fs::read(f).unwrap()).unwrap())
        .collect();
    let side = pictures
        .iter()
        .map(|p| p.width().max(p.height()))
        .max()
        .unwrap()
        + 40;
    let canvas: Vec<image::GrayImage> = pictures
        .iter()
        .map(|p| {
            let mut c = image::GrayImage::from_pixel(side, side, image::Luma([255]));
            image::imageops::overlay(&mut c, p, 20, 20);
            c
        })
        .collect();
    let video = dir.path().join("clip.y4m");
    airgap_bundle::frames::write_y4m(fs::File::create(&video).unwrap(), &canvas[4..], 30).unwrap();
    let out = dir.path().join("back.tbundle");
    let o = tessera(&["bundle", "scan", "--video", s(&video), "-o", s(&out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&bundle).unwrap());
}
