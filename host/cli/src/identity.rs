//! Link security on the command line: `ditto keygen` and the options every networked command
//! shares (`--identity`, `--trust`, `--pin`, `--insecure-plaintext`).

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use ditto_net::tls::{Identity, Pins, Security};

use crate::files::CliError;
use ditto_node::files::write_private;

/// How a command secures its links.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LinkArgs {
    /// This process's identity (certificate and private key, from `ditto keygen`).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// The peers' fingerprints: a file of `ROLE FINGERPRINT` lines (roles p0, p1, dealer,
    /// client), e.g. the `trust` file `ditto keygen` writes.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// A peer's fingerprint, `ROLE=FINGERPRINT` (repeatable; overrides --trust).
    #[arg(long = "pin")]
    pub pins: Vec<String>,
    /// INSECURE: plain TCP, unauthenticated and unencrypted. For experiments only.
    #[arg(long)]
    pub insecure_plaintext: bool,
}

impl LinkArgs {
    /// The security these options describe: TLS with pinned peers unless `--insecure-plaintext`.
    pub fn security(&self) -> Result<Security, CliError> {
        if self.insecure_plaintext {
            eprintln!(
                "WARNING: --insecure-plaintext: links are neither authenticated nor encrypted; \
                 anyone on the path sees and can change every message"
            );
            return Ok(Security::Plaintext);
        }
        let Some(id) = &self.identity else {
            return Err(CliError::Usage(
                "links are TLS by default: give --identity FILE and --trust FILE (see `ditto keygen`), \
                 or --insecure-plaintext"
                    .into(),
            ));
        };
        let identity = Identity::load(id)?;
        let mut pins = match &self.trust {
            Some(p) => Pins::parse(
                &fs::read_to_string(p).map_err(|source| CliError::File { path: p.clone(), source })?,
            )
            .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?,
            None => Pins::default(),
        };
        for p in &self.pins {
            let Some((role, fp)) = p.split_once('=') else {
                return Err(CliError::Usage(format!("--pin {p:?}: expected ROLE=FINGERPRINT")));
            };
            pins.pin(role, fp.parse().map_err(|e| CliError::Usage(format!("--pin {role}: {e}")))?);
        }
        Ok(Security::tls(identity, pins))
    }
}

/// Arguments of `ditto keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Directory for NAME.identity (private, mode 0600) and the `trust` file (public).
    #[arg(long)]
    pub out: PathBuf,
    /// Roles to make identities for: p0, p1, dealer, client (repeatable).
    #[arg(long = "name", required = true)]
    pub names: Vec<String>,
}

/// Writes one identity per name and appends each fingerprint to `trust`.
pub fn keygen(a: &KeygenArgs) -> Result<(), CliError> {
    fs::create_dir_all(&a.out).map_err(|source| CliError::File { path: a.out.clone(), source })?;
    let mut pins = Pins::default();
    for name in &a.names {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(CliError::Usage(format!("--name {name:?}: letters, digits, - and _ only")));
        }
        let id = Identity::generate()?;
        write_private(&a.out.join(format!("{name}.identity")), id.to_pem().as_bytes())?;
        pins.pin(name, id.fingerprint());
        say!("{name} {}", id.fingerprint());
    }
    let trust = a.out.join("trust");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&trust)
        .map_err(|source| CliError::File { path: trust.clone(), source })?;
    f.write_all(pins.to_text().as_bytes())
        .map_err(|source| CliError::File { path: trust.clone(), source })?;
    say!(
        "wrote {0}/NAME.identity (give each process its own) and appended the fingerprints to {0}/trust",
        a.out.display()
    );
    Ok(())
}
