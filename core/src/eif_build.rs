//! Deterministic enclave images: a newc `cpio` writer for initramfs archives and an EIF writer.
//!
//! The same inputs always give the same bytes. Nothing here reads the clock, the file system
//! or the environment: every byte of the image comes from the arguments. Archive entries are
//! written sorted by path with fixed owners (0:0), modification times (0), inode numbers (in
//! path order) and link counts; parent directories are added (mode 0755) when an entry needs
//! them. The EIF is version 4 with no flags, the kernel, the command line and the ramdisks in
//! order, and its header CRC-32, the layout [`crate::eif::parse`] reads and measures.
//!
//! PCR1 covers the kernel, the command line and the first ramdisk; PCR2 the other ramdisks; so
//! an image whose first ramdisk holds the boot system (init, modules, libraries) and whose
//! second holds the application has a PCR1 that names the boot system and a PCR2 that names the
//! application.

use std::collections::BTreeMap;

/// Why an image could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("archive path {0:?}: {1}")]
    Path(String, &'static str),
    #[error("archive path {0:?} is given twice")]
    Duplicate(String),
    #[error("archive path {0:?} is a file, yet {1:?} lies under it")]
    NotADirectory(String, String),
    #[error("{0} is too large for a newc archive entry (4 GiB at most)")]
    TooLarge(String),
    #[error("an EIF holds at most {max} sections, this one would have {0}", max = MAX_SECTIONS)]
    TooManySections(usize),
    #[error("the kernel command line contains a NUL byte")]
    CmdlineNul,
    #[error("an EIF needs at least one ramdisk")]
    NoRamdisk,
}

/// One archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    CharDevice { mode: u32, major: u32, minor: u32 },
    Symlink { target: String },
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFLNK: u32 = 0o120_000;

/// A newc (`070701`) `cpio` archive, as the Linux kernel unpacks into its initial root file
/// system. Paths are relative (`bin/tool`, not `/bin/tool`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
}

impl Initramfs {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory with permission bits `mode` (0o755, ...).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, BuildError> {
        self.insert(
            path,
            Entry::Dir {
                mode: mode & 0o7777,
            },
        )
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<&mut Self, BuildError> {
        if u32::try_from(data.len()).is_err() {
            return Err(BuildError::TooLarge(path.to_owned()));
        }
        self.insert(
            path,
            Entry::File {
                mode: mode & 0o7777,
                data,
            },
        )
    }

    /// A character device node (`dev/console` is 5:1).
    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, BuildError> {
        self.insert(
            path,
            Entry::CharDevice {
                mode: mode & 0o7777,
                major,
                minor,
            },
        )
    }

    /// A symbolic link to `target` (stored as given).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, BuildError> {
        if target.is_empty() || target.contains('\0') {
            return Err(BuildError::Path(
                target.to_owned(),
                "is not a valid link target",
            ));
        }
        self.insert(
            path,
            Entry::Symlink {
                target: target.to_owned(),
            },
        )
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<&mut Self, BuildError> {
        check_path(path)?;
        // Every ancestor must be (or become) a directory.
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            match self.entries.get(parent) {
                Some(Entry::Dir { .. }) => {}
                Some(_) => {
                    return Err(BuildError::NotADirectory(
                        parent.to_owned(),
                        path.to_owned(),
                    ));
                }
                None => {
                    self.entries
                        .insert(parent.to_owned(), Entry::Dir { mode: 0o755 });
                }
            }
            at += i + 1;
        }
        match self.entries.get(path) {
            // A directory added implicitly may be given its own mode later.
            Some(Entry::Dir { .. }) if matches!(entry, Entry::Dir { .. }) => {}
            Some(_) => return Err(BuildError::Duplicate(path.to_owned())),
            None => {}
        }
        self.entries.insert(path.to_owned(), entry);
        Ok(self)
    }

    /// Whether `path` is in the archive as anything but a directory.
    fn has_non_dir(&self, path: &str) -> bool {
        self.entries
            .get(path)
            .is_some_and(|e| !matches!(e, Entry::Dir { .. }))
    }

    /// The paths in archive order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The archive's bytes: entries in path order, then the `TRAILER!!!` entry.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, nlink, rdev, data): (u32, u32, (u32, u32), &[u8]) = match entry {
                Entry::Dir { mode } => (S_IFDIR | mode, 2, (0, 0), &[]),
                Entry::File { mode, data } => (S_IFREG | mode, 1, (0, 0), data),
                Entry::CharDevice { mode, major, minor } => {
                    (S_IFCHR | mode, 1, (*major, *minor), &[])
                }
                Entry::Symlink { target } => (S_IFLNK | 0o777, 1, (0, 0), target.as_bytes()),
            };
            write_entry(&mut out, ino as u32 + 1, mode, nlink, rdev, path, data);
        }
        write_entry(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }
}

fn check_path(path: &str) -> Result<(), BuildError> {
    let bad = |why| Err(BuildError::Path(path.to_owned(), why));
    if path.is_empty() {
        return bad("is empty");
    }
    if path.starts_with('/') || path.ends_with('/') {
        return bad("must be relative, without a leading or trailing slash");
    }
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    if path == "TRAILER!!!" {
        return bad("is the archive's end marker");
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("has an empty, . or .. component");
        }
    }
    Ok(())
}

/// One newc header, the NUL-terminated name and the data, each padded to 4 bytes.
fn write_entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Sections an EIF header can list.
pub const MAX_SECTIONS: usize = 32;
const HEADER_LEN: usize = 548;
const SECTION_HEADER_LEN: usize = 12;
const EIF_VERSION: u16 = 4;
/// Memory and vCPUs recorded in the header as defaults (`nitro-cli` overrides them at run time).
const DEFAULT_MEM: u64 = 1 << 30;
const DEFAULT_CPUS: u64 = 2;

const KERNEL: u16 = 1;
const CMDLINE: u16 = 2;
const RAMDISK: u16 = 3;

/// Writes an EIF: header, kernel, command line, then each ramdisk in order.
pub fn write_eif(
    kernel: &[u8],
    cmdline: &str,
    ramdisks: &[Vec<u8>],
) -> Result<Vec<u8>, BuildError> {
    if cmdline.contains('\0') {
        return Err(BuildError::CmdlineNul);
    }
    if ramdisks.is_empty() {
        return Err(BuildError::NoRamdisk);
    }
    let mut sections: Vec<(u16, &[u8])> = vec![(KERNEL, kernel), (CMDLINE, cmdline.as_bytes())];
    sections.extend(ramdisks.iter().map(|r| (RAMDISK, r.as_slice())));
    if sections.len() > MAX_SECTIONS {
        return Err(BuildError::TooManySections(sections.len()));
    }

    let mut offsets = [0u64; MAX_SECTIONS];
    let mut sizes = [0u64; MAX_SECTIONS];
    let mut pos = HEADER_LEN as u64;
    for (i, (_, data)) in sections.iter().enumerate() {
        offsets[i] = pos;
        sizes[i] = data.len() as u64;
        pos += (SECTION_HEADER_LEN + data.len()) as u64;
    }

    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(b".eif");
    header.extend_from_slice(&EIF_VERSION.to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes()); // flags
    header.extend_from_slice(&DEFAULT_MEM.to_be_bytes());
    header.extend_from_slice(&DEFAULT_CPUS.to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes()); // reserved
    header.extend_from_slice(&(sections.len() as u16).to_be_bytes());
    for o in offsets {
        header.extend_from_slice(&o.to_be_bytes());
    }
    for s in sizes {
        header.extend_from_slice(&s.to_be_bytes());
    }
    header.extend_from_slice(&0u32.to_be_bytes()); // unused

    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    let mut body = Vec::with_capacity((pos as usize).saturating_sub(HEADER_LEN));
    for (kind, data) in &sections {
        let start = body.len();
        body.extend_from_slice(&kind.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes()); // section flags
        body.extend_from_slice(&(data.len() as u64).to_be_bytes());
        body.extend_from_slice(data);
        crc.update(&body[start..]);
    }
    header.extend_from_slice(&crc.finalize().to_be_bytes());
    debug_assert_eq!(header.len(), HEADER_LEN);
    header.extend_from_slice(&body);
    Ok(header)
}

/// A kernel module the init loads, in the listed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// File name in `lib/modules/` (`nsm.ko.xz`); `.xz` files are decompressed by the kernel.
    pub name: String,
    pub bytes: Vec<u8>,
    /// Module parameters. `${name}` is replaced at boot by the comma-joined values of the
    /// kernel command-line parameter `name` (how the emulated machine's `virtio_mmio.device=`
    /// values reach a module that registers those devices).
    pub params: String,
}

/// Everything a Tessera enclave image is made of. Files are given by content, so the image
/// depends on nothing but these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub kernel: Vec<u8>,
    pub cmdline: String,
    /// PID 1 (`tessera-init`), at `/init`.
    pub init: Vec<u8>,
    pub modules: Vec<Module>,
    /// Shared libraries and the ELF interpreter, each at its absolute path in the image
    /// (`lib64/ld-linux-x86-64.so.2`), for dynamically linked programs.
    pub libraries: Vec<(String, Vec<u8>)>,
    /// `tessera-enclave`, at `/bin/tessera-enclave`.
    pub enclave: Vec<u8>,
    /// Its arguments, one per line in `/etc/tessera/enclave.args`.
    pub enclave_args: Vec<String>,
    /// The pivot application the manifest names, at `/app/pivot`.
    pub pivot: Option<Vec<u8>>,
}

/// Where the image puts the pivot application.
pub const PIVOT_PATH: &str = "/app/pivot";

/// A built image: the EIF and its two ramdisks' file lists.
#[derive(Debug, Clone)]
pub struct Image {
    pub eif: Vec<u8>,
    pub boot_paths: Vec<String>,
    pub app_paths: Vec<String>,
}

impl ImageSpec {
    /// The boot ramdisk (init, device nodes, modules, libraries: PCR1) and the application
    /// ramdisk (`tessera-enclave`, its arguments, the pivot app: PCR2), then the EIF.
    pub fn build(&self) -> Result<Image, BuildError> {
        let mut boot = Initramfs::new();
        boot.file("init", 0o755, self.init.clone())?;
        for d in ["dev", "proc", "sys", "run", "etc/tessera", "lib/modules"] {
            boot.dir(d, 0o755)?;
        }
        boot.dir("tmp", 0o1777)?;
        boot.char_device("dev/console", 0o600, 5, 1)?;
        boot.char_device("dev/null", 0o666, 1, 3)?;
        let mut list = String::new();
        for m in &self.modules {
            if m.name.contains('/') || m.name.contains(char::is_whitespace) {
                return Err(BuildError::Path(
                    m.name.clone(),
                    "a module is named by a plain file name",
                ));
            }
            if m.params.contains('\n') {
                return Err(BuildError::Path(m.name.clone(), "parameters span lines"));
            }
            boot.file(&format!("lib/modules/{}", m.name), 0o644, m.bytes.clone())?;
            list.push_str("/lib/modules/");
            list.push_str(&m.name);
            if !m.params.is_empty() {
                list.push(' ');
                list.push_str(&m.params);
            }
            list.push('\n');
        }
        boot.file("etc/tessera/modules", 0o644, list.into_bytes())?;
        for (path, bytes) in &self.libraries {
            boot.file(path.trim_start_matches('/'), 0o755, bytes.clone())?;
        }

        let mut app = Initramfs::new();
        app.file("bin/tessera-enclave", 0o755, self.enclave.clone())?;
        let mut args = self.enclave_args.clone();
        if let Some(pivot) = &self.pivot {
            app.file(PIVOT_PATH.trim_start_matches('/'), 0o755, pivot.clone())?;
            args.extend(["--pivot-bin".to_owned(), PIVOT_PATH.to_owned()]);
        }
        if args.iter().any(|a| a.contains('\n')) {
            return Err(BuildError::Path(
                "etc/tessera/enclave.args".into(),
                "an argument spans lines",
            ));
        }
        let mut text = args.join("\n");
        text.push('\n');
        app.file("etc/tessera/enclave.args", 0o644, text.into_bytes())?;

        // The kernel unpacks the archives in order, so a boot-ramdisk file at an application
        // path would be silently replaced: refuse the overlap rather than build a confusing image.
        if let Some(p) = app
            .paths()
            .find(|p| boot.has_non_dir(p) || (app.has_non_dir(p) && boot.paths().any(|b| b == *p)))
        {
            return Err(BuildError::Path(
                p.to_owned(),
                "is in both the boot and the application ramdisk",
            ));
        }
        let eif = write_eif(
            &self.kernel,
            &self.cmdline,
            &[boot.to_bytes(), app.to_bytes()],
        )?;
        Ok(Image {
            eif,
            boot_paths: boot.paths().map(str::to_owned).collect(),
            app_paths: app.paths().map(str::to_owned).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Initramfs {
        let mut a = Initramfs::new();
        a.file("init", 0o755, b"#!init".to_vec()).unwrap();
        a.char_device("dev/console", 0o600, 5, 1).unwrap();
        a.file("bin/tool", 0o755, vec![1, 2, 3]).unwrap();
        a.symlink("lib64", "lib").unwrap();
        a
    }

    #[test]
    fn entries_are_sorted_and_parents_added() {
        let a = sample();
        let paths: Vec<&str> = a.paths().collect();
        assert_eq!(
            paths,
            ["bin", "bin/tool", "dev", "dev/console", "init", "lib64"]
        );
    }

    #[test]
    fn insertion_order_does_not_change_the_bytes() {
        let mut b = Initramfs::new();
        b.symlink("lib64", "lib").unwrap();
        b.file("bin/tool", 0o755, vec![1, 2, 3]).unwrap();
        b.char_device("dev/console", 0o600, 5, 1).unwrap();
        b.file("init", 0o755, b"#!init".to_vec()).unwrap();
        assert_eq!(sample().to_bytes(), b.to_bytes());
    }

    #[test]
    fn newc_layout() {
        let bytes = sample().to_bytes();
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(bytes.len() % 4, 0);
        // The first entry is the directory "bin": mode 040755, nlink 2, name size 4.
        let field = |i: usize| &bytes[6 + 8 * i..6 + 8 * (i + 1)];
        assert_eq!(field(1), b"000041ed");
        assert_eq!(field(4), b"00000002");
        assert_eq!(field(11), b"00000004");
        assert_eq!(&bytes[110..114], b"bin\0");
        assert!(bytes.windows(11).any(|w| w == b"TRAILER!!!\0"));
    }

    #[test]
    fn bad_paths_are_refused() {
        let mut a = Initramfs::new();
        for p in ["", "/abs", "a/../b", "a//b", "dir/", "TRAILER!!!", "a\0b"] {
            assert!(
                matches!(a.file(p, 0o644, vec![]), Err(BuildError::Path(..))),
                "{p:?}"
            );
        }
        a.file("x", 0o644, vec![]).unwrap();
        assert_eq!(
            a.file("x", 0o644, vec![]),
            Err(BuildError::Duplicate("x".into()))
        );
        assert!(matches!(
            a.file("x/y", 0o644, vec![]),
            Err(BuildError::NotADirectory(..))
        ));
    }

    #[test]
    fn eif_parses_and_measures_like_the_reader() {
        let r1 = sample().to_bytes();
        let r2 = b"second".to_vec();
        let eif = write_eif(b"kernel", "console=ttyS0", &[r1.clone(), r2.clone()]).unwrap();
        let parsed = crate::eif::parse(&eif).unwrap();
        assert_eq!(parsed.header.version, 4);
        assert_eq!(parsed.sections.len(), 4);
        let expected = |parts: &[&[u8]]| {
            use sha2::{Digest, Sha384};
            let mut h = Sha384::new();
            for p in parts {
                h.update(p);
            }
            crate::pcr::Pcr::extended_from_zero(&h.finalize())
        };
        assert_eq!(
            parsed.measurements.pcr0,
            expected(&[b"kernel", b"console=ttyS0", &r1, &r2])
        );
        assert_eq!(
            parsed.measurements.pcr1,
            expected(&[b"kernel", b"console=ttyS0", &r1])
        );
        assert_eq!(parsed.measurements.pcr2, expected(&[&r2]));
    }

    fn spec() -> ImageSpec {
        ImageSpec {
            kernel: b"kernel".to_vec(),
            cmdline: "console=ttyS0".into(),
            init: b"init".to_vec(),
            modules: vec![Module {
                name: "m.ko".into(),
                bytes: b"module".to_vec(),
                params: "device=${virtio_mmio.device}".into(),
            }],
            libraries: vec![("/lib64/ld.so".into(), b"ld".to_vec())],
            enclave: b"enclave".to_vec(),
            enclave_args: vec!["--listen".into(), "vsock:5005".into()],
            pivot: Some(b"pivot".to_vec()),
        }
    }

    #[test]
    fn image_layout() {
        let image = spec().build().unwrap();
        assert!(image.boot_paths.iter().any(|p| p == "lib/modules/m.ko"));
        assert!(image.boot_paths.iter().any(|p| p == "lib64/ld.so"));
        assert_eq!(
            image.app_paths,
            [
                "app",
                "app/pivot",
                "bin",
                "bin/tessera-enclave",
                "etc",
                "etc/tessera",
                "etc/tessera/enclave.args"
            ]
        );
        let eif = crate::eif::parse(&image.eif).unwrap();
        assert_eq!(eif.sections.len(), 4);
    }

    #[test]
    fn a_boot_file_at_an_application_path_is_refused() {
        for path in [
            "/bin/tessera-enclave",
            "/app/pivot",
            "/etc/tessera/enclave.args",
        ] {
            let mut s = spec();
            s.libraries.push((path.into(), b"impostor".to_vec()));
            assert!(
                matches!(s.build(), Err(BuildError::Path(p, _)) if p == path[1..]),
                "{path}"
            );
        }
        // A file where the application needs a directory.
        let mut s = spec();
        s.libraries.push(("/bin".into(), b"x".to_vec()));
        assert!(s.build().is_err());
    }

    #[test]
    fn eif_inputs_are_checked() {
        assert_eq!(
            write_eif(b"k", "a\0b", &[vec![]]),
            Err(BuildError::CmdlineNul)
        );
        assert_eq!(write_eif(b"k", "", &[]), Err(BuildError::NoRamdisk));
        let many = vec![vec![0u8]; MAX_SECTIONS - 1];
        assert_eq!(
            write_eif(b"k", "", &many),
            Err(BuildError::TooManySections(MAX_SECTIONS + 1))
        );
    }
}
