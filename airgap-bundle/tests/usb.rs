//! Bundle files: atomic, never overwritten, clearly named, and damage reported.

use std::fs;

use airgap_bundle::usb::{self, UsbError};
use airgap_bundle::{Bundle, BundleError, BundleKind, MAX_BUNDLE_BYTES, Metadata};

fn share() -> Bundle {
    let meta = Metadata {
        namespace: Some("pay ments/prod".into()),
        member: Some("Alice-Ops".into()),
        nonce: Some(7),
        file_name: None,
    };
    Bundle::new(BundleKind::Share, meta, b"encrypted share".to_vec()).unwrap()
}

#[test]
fn file_names_say_kind_namespace_member_nonce_and_fingerprint() {
    let bundle = share();
    let name = usb::file_name_for(&bundle);
    assert_eq!(
        name,
        format!(
            "share-pay_ments_prod-Alice_Ops-n7-{}.tbundle",
            bundle.fingerprint().to_hex()
        )
    );
    let file = Bundle::file("../.hidden name.txt", vec![]).unwrap_err();
    assert!(matches!(file, BundleError::InvalidMetadata(_)));
    let file = Bundle::file(".hidden name.txt", vec![1]).unwrap();
    let name = usb::file_name_for(&file);
    assert!(name.starts_with("file-_hidden_name.txt-"), "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    );
}

#[test]
fn write_then_read_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = share();
    let path = usb::write_bundle(dir.path(), &bundle).unwrap();
    assert_eq!(usb::read_bundle(&path).unwrap(), bundle);
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1);

    let listed = usb::list_bundles(dir.path()).unwrap();
    assert_eq!(listed.len(), 1);
    let summary = listed[0].summary.as_ref().unwrap();
    assert_eq!(summary.kind, BundleKind::Share);
    assert_eq!(summary.fingerprint, bundle.fingerprint());
    assert_eq!(listed[0].fingerprint, Some(bundle.fingerprint()));
}

#[test]
fn existing_files_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = share();
    let path = usb::write_bundle(dir.path(), &bundle).unwrap();
    let err = usb::write_bundle(dir.path(), &bundle).unwrap_err();
    assert!(matches!(err, UsbError::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("never overwritten"), "{err}");

    let other = dir.path().join("notes.txt");
    fs::write(&other, b"keep me").unwrap();
    let err = usb::write_bundle_to(&other, &bundle).unwrap_err();
    assert!(matches!(err, UsbError::AlreadyExists { .. }));
    assert_eq!(fs::read(&other).unwrap(), b"keep me");
    assert_eq!(usb::read_bundle(&path).unwrap(), bundle);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn damaged_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = share().encode();

    let cut = dir.path().join("cut.tbundle");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = usb::read_bundle(&cut).unwrap_err();
    assert!(
        matches!(
            err,
            UsbError::Bundle {
                source: BundleError::Truncated,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cut short"));

    let altered = dir.path().join("altered.tbundle");
    let mut bad = bytes.clone();
    let i = bad.len() - 40;
    bad[i] ^= 0x20;
    fs::write(&altered, &bad).unwrap();
    let err = usb::read_bundle(&altered).unwrap_err();
    assert!(
        matches!(
            err,
            UsbError::Bundle {
                source: BundleError::ChecksumMismatch,
                ..
            }
        ),
        "{err}"
    );

    let empty = dir.path().join("empty.tbundle");
    fs::write(&empty, b"").unwrap();
    assert!(usb::read_bundle(&empty).is_err());

    let huge = dir.path().join("huge.tbundle");
    let f = fs::File::create(&huge).unwrap();
    f.set_len(MAX_BUNDLE_BYTES as u64 + 1).unwrap();
    let err = usb::read_bundle(&huge).unwrap_err();
    assert!(
        matches!(
            err,
            UsbError::Bundle {
                source: BundleError::TooLarge { .. },
                ..
            }
        ),
        "{err}"
    );

    // Listing shows damaged files with their error, skips hidden and foreign files.
    fs::write(dir.path().join(".partial.tbundle.123-0.tmp"), b"x").unwrap();
    fs::write(dir.path().join(".hidden.tbundle"), &bytes).unwrap();
    fs::write(dir.path().join("readme.txt"), b"x").unwrap();
    fs::write(dir.path().join("good.tbundle"), &bytes).unwrap();
    let listed = usb::list_bundles(dir.path()).unwrap();
    let names: Vec<String> = listed
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "altered.tbundle",
            "cut.tbundle",
            "empty.tbundle",
            "good.tbundle",
            "huge.tbundle"
        ]
    );
    let ok: Vec<bool> = listed.iter().map(|f| f.summary.is_ok()).collect();
    assert_eq!(ok, [false, false, false, true, false]);
}

#[test]
fn write_new_file_refuses_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let err = usb::write_new_file(&dir.path().join("no/such/dir/x"), b"x").unwrap_err();
    assert!(matches!(err, UsbError::Io { .. }), "{err}");
}
