//! The real app in a real 80x24 terminal (tmux) scanning animated QR frames: the Scan screen is
//! fed by a folder of pictures through the same frame-source path a webcam takes
//! (`--scan-from frames:DIR`). A scan that runs out of frames says how far it got and writes
//! nothing; with the whole stream the bundle is written, checked, and opened as if from USB.

mod ceremony_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use ceremony_support::Tmux;

fn tessera(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_scan_screen_reads_a_frame_folder_at_80x24() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("request.bin");
    let text: String = (0..5_000u32)
        .map(|i| char::from_digit(i * 7 % 36, 36).unwrap())
        .collect();
    fs::write(&input, text).unwrap();
    let bundle = dir.path().join("draft.tbundle");
    tessera(&["bundle", "pack", s(&input), "-o", s(&bundle)]);
    let all = dir.path().join("all");
    tessera(&[
        "bundle",
        "qr",
        s(&bundle),
        "--png-dir",
        s(&all),
        "--parts",
        "120",
    ]);
    let mut files: Vec<_> = fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // First only ten frames: the scan runs out.
    let frames = dir.path().join("frames");
    fs::create_dir(&frames).unwrap();
    for f in &files[..10] {
        fs::copy(f, frames.join(f.file_name().unwrap())).unwrap();
    }
    let usb = dir.path().join("usb");
    fs::create_dir(&usb).unwrap();

    let tmux = Tmux {
        socket: format!("tessera-scan-{}", std::process::id()),
    };
    let app = format!(
        "TESSERA_TRANSCRIPT={} {} --dir {} --scan-from frames:{}",
        s(&dir.path().join("transcript.jsonl")),
        env!("CARGO_BIN_EXE_tessera"),
        s(&usb),
        s(&frames),
    );
    tmux.cmd(&["new-session", "-d", "-s", "t", "-x", "80", "-y", "24", &app]);
    tmux.wait_for("1Home");
    tmux.keys(&["s"]);
    let screen = tmux.wait_for("Stopped: too few parts");
    assert!(screen.contains("Scan a bundle's QR code"), "{screen}");
    assert!(
        screen.contains("10 of 52 fragments' worth, 19%"),
        "{screen}"
    );
    assert!(
        screen.contains("file bundle (unverified until complete)"),
        "{screen}"
    );
    assert!(screen.contains("Rejected none"), "{screen}");
    assert_eq!(
        fs::read_dir(&usb).unwrap().count(),
        0,
        "written before complete"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("r rescan");

    // The rest of the stream, minus every third frame, and one frame of another bundle.
    for (i, f) in files[10..].iter().enumerate() {
        if i % 3 != 0 {
            fs::copy(f, frames.join(f.file_name().unwrap())).unwrap();
        }
    }
    let other_input = dir.path().join("other.bin");
    fs::write(&other_input, vec![b'x'; 3_000]).unwrap();
    let other = dir.path().join("other.tbundle");
    tessera(&["bundle", "pack", s(&other_input), "-o", s(&other)]);
    let other_frames = dir.path().join("other-frames");
    tessera(&[
        "bundle",
        "qr",
        s(&other),
        "--png-dir",
        s(&other_frames),
        "--parts",
        "1",
    ]);
    fs::copy(
        other_frames.join("frame-0001.png"),
        frames.join("frame-0012b.png"),
    )
    .unwrap();
    tmux.keys(&["s"]);
    let screen = tmux.wait_for("not reviewed here");
    assert!(screen.contains("file bundle"), "{screen}");
    let written: Vec<_> = fs::read_dir(&usb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(fs::read(&written[0]).unwrap(), fs::read(&bundle).unwrap());
    tmux.keys(&["Escape"]);
    // Back on Home, the received bundle is listed like any on the stick.
    let home = tmux.wait_for("file-request.bin");
    assert!(home.contains("file bundle"), "{home}");
    tmux.keys(&["q"]);
}
