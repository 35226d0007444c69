//! `tessera image build`: a deterministic enclave image (EIF) from a kernel, `tessera-init`,
//! kernel modules, shared libraries, `tessera-enclave` and the pivot app. Same input bytes,
//! same EIF bytes, wherever and whenever it is built (docs/image.md).
//!
//! Exit codes: 0 built; 1 the inputs were refused (a bad path, a NUL in the command line);
//! 2 usage or I/O.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use tessera_core::bytes::Hash32;
use tessera_core::eif;
use tessera_core::eif_build::{ImageSpec, Module};

/// The kernel command line unless `--cmdline` is given: the serial console, reboot (which ends
/// the enclave) on panic, no PCI, and the initramfs's `/init` as PID 1.
pub const DEFAULT_CMDLINE: &str =
    "console=ttyS0 reboot=k panic=-1 pci=off random.trust_cpu=on quiet rdinit=/init";

/// Largest input file read (a kernel or a binary).
const MAX_INPUT: u64 = 256 << 20;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Build an EIF; prints its SHA-256 and PCR0-2 (the values `tessera pcrs` gives for it).
    Build(BuildArgs),
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The kernel (a bzImage such as Debian's vmlinuz, or AWS's enclave kernel).
    #[arg(long)]
    pub kernel: PathBuf,
    /// The kernel command line.
    #[arg(long, default_value = DEFAULT_CMDLINE)]
    pub cmdline: String,
    /// PID 1 of the image: the `tessera-init` binary.
    #[arg(long)]
    pub init: PathBuf,
    /// The `tessera-enclave` binary.
    #[arg(long)]
    pub enclave: PathBuf,
    /// The pivot application the manifest names (at /app/pivot; passed as --pivot-bin).
    #[arg(long)]
    pub pivot: Option<PathBuf>,
    /// A kernel module to load at boot, in the order given (.ko or .ko.xz); repeat.
    #[arg(long = "module", value_name = "PATH")]
    pub modules: Vec<PathBuf>,
    /// Parameters of a module, as `FILE_NAME=PARAMS` (`${name}` takes the kernel command-line
    /// parameter `name`'s values); repeat.
    #[arg(long = "module-params", value_name = "FILE_NAME=PARAMS")]
    pub module_params: Vec<String>,
    /// A shared library or ELF interpreter, put at the same absolute path in the image; repeat.
    #[arg(long = "lib", value_name = "PATH")]
    pub libs: Vec<PathBuf>,
    /// Where tessera-enclave listens inside the image.
    #[arg(long, default_value = "vsock:5005")]
    pub listen: String,
    /// A further argument to tessera-enclave; repeat.
    #[arg(long = "enclave-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub enclave_args: Vec<String>,
    /// The EIF to write (replaced if it exists).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
    /// Print the result as JSON (`{"sha256", "Measurements": {...}, "inputs": [...]}`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: Command) -> ExitCode {
    match cmd {
        Command::Build(a) => match build(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, msg)) => {
                eprintln!("tessera image build: {msg}");
                ExitCode::from(code)
            }
        },
    }
}

type Fail = (u8, String);

fn read(path: &Path) -> Result<Vec<u8>, Fail> {
    let meta = std::fs::metadata(path).map_err(|e| (2, format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err((2, format!("{}: not a regular file", path.display())));
    }
    if meta.len() > MAX_INPUT {
        return Err((
            2,
            format!(
                "{}: {} bytes, more than the {MAX_INPUT} an image input may have",
                path.display(),
                meta.len()
            ),
        ));
    }
    std::fs::read(path).map_err(|e| (2, format!("{}: {e}", path.display())))
}

fn file_name(path: &Path) -> Result<String, Fail> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| (2, format!("{}: no usable file name", path.display())))
}

fn build(a: &BuildArgs) -> Result<(), Fail> {
    let mut inputs = Vec::new();
    let mut note = |role: &str, path: &Path, bytes: &[u8]| {
        inputs.push((
            role.to_owned(),
            path.display().to_string(),
            Hash32::sha256(bytes),
        ));
    };
    let kernel = read(&a.kernel)?;
    note("kernel", &a.kernel, &kernel);
    let init = read(&a.init)?;
    note("init", &a.init, &init);
    let enclave = read(&a.enclave)?;
    note("enclave", &a.enclave, &enclave);
    let pivot = match &a.pivot {
        Some(p) => {
            let b = read(p)?;
            note("pivot", p, &b);
            Some(b)
        }
        None => None,
    };

    let mut params = std::collections::BTreeMap::new();
    for p in &a.module_params {
        let (name, value) = p.split_once('=').ok_or_else(|| {
            (
                2,
                format!("--module-params {p:?}: expected FILE_NAME=PARAMS"),
            )
        })?;
        if params.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err((2, format!("--module-params: {name} is given twice")));
        }
    }
    let mut modules = Vec::new();
    for path in &a.modules {
        let name = file_name(path)?;
        let bytes = read(path)?;
        note("module", path, &bytes);
        modules.push(Module {
            params: params.remove(&name).unwrap_or_default(),
            name,
            bytes,
        });
    }
    if let Some(name) = params.keys().next() {
        return Err((
            2,
            format!("--module-params names {name}, which no --module is"),
        ));
    }

    let mut libraries = Vec::new();
    for path in &a.libs {
        if !path.is_absolute() {
            return Err((
                2,
                format!(
                    "--lib {}: give the absolute path the program loads it from",
                    path.display()
                ),
            ));
        }
        let in_image = path
            .to_str()
            .ok_or_else(|| (2, format!("--lib {}: not UTF-8", path.display())))?;
        let bytes = read(path)?;
        note("lib", path, &bytes);
        libraries.push((in_image.to_owned(), bytes));
    }

    let mut enclave_args = vec!["--listen".to_owned(), a.listen.clone()];
    enclave_args.extend(a.enclave_args.iter().cloned());
    let spec = ImageSpec {
        kernel,
        cmdline: a.cmdline.clone(),
        init,
        modules,
        libraries,
        enclave,
        enclave_args,
        pivot,
    };
    let image = spec.build().map_err(|e| (1, e.to_string()))?;
    let m =
        eif::measure(&image.eif).map_err(|e| (1, format!("built image does not parse: {e}")))?;
    write_replacing(&a.out, &image.eif)?;
    let sha = Hash32::sha256(&image.eif);

    if a.json {
        let report = json!({
            "eif": a.out.display().to_string(),
            "sha256": sha.to_string(),
            "size": image.eif.len(),
            "cmdline": a.cmdline,
            "Measurements": {
                "HashAlgorithm": "Sha384 { ... }",
                "PCR0": m.pcr0.to_hex(),
                "PCR1": m.pcr1.to_hex(),
                "PCR2": m.pcr2.to_hex(),
            },
            "inputs": inputs.iter().map(|(role, path, h)| json!({
                "role": role, "path": path, "sha256": h.to_string(),
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!("image {} ({} bytes)", a.out.display(), image.eif.len());
        for (role, path, h) in &inputs {
            println!("  input {role:<8} {h}  {path}");
        }
        println!(
            "  boot ramdisk: {} entries; application ramdisk: {}",
            image.boot_paths.len(),
            image.app_paths.join(" ")
        );
        println!("SHA256 {sha}");
        println!("PCR0 {}", m.pcr0);
        println!("PCR1 {}", m.pcr1);
        println!("PCR2 {}", m.pcr2);
    }
    Ok(())
}

/// Writes the image beside `path` and renames it over: a reader never sees half an image.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), Fail> {
    let err = |e: std::io::Error| (2, format!("{}: {e}", path.display()));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
}
