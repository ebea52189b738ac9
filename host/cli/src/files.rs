//! Key and seed files, the dealer's session record, and the CLI error type.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ditto_core::prg::{Seed, SessionId};
use ditto_dealer::keys::{PartyKey, Provisioning};
use zeroize::Zeroize;

/// Errors of the command line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key or seed file that is not 32 hex digits.
    #[error("{path}: expected 32 hex digits (a 16-byte key), found {found}")]
    KeyFormat {
        /// The file.
        path: PathBuf,
        /// What was there (length only, never the content).
        found: String,
    },
    /// A bad command-line value.
    #[error("{0}")]
    Usage(String),
    /// The session was already used (served by this dealer, or consumed by this party).
    #[error("session {session:032x} was already used (record {record}); a session id is never used twice")]
    SessionReused {
        /// Session id.
        session: u128,
        /// The record file.
        record: PathBuf,
    },
    /// The OS random number generator failed.
    #[error("OS random number generator: {0}")]
    Rng(String),
    /// A dealer error.
    #[error(transparent)]
    Dealer(#[from] ditto_dealer::Error),
    /// A core error.
    #[error(transparent)]
    Core(#[from] ditto_core::Error),
    /// A network error.
    #[error("network: {0}")]
    Net(String),
    /// A model could not be loaded.
    #[error(transparent)]
    Model(#[from] ditto_models::ModelError),
    /// The link between the parties or to the dealer failed.
    #[error(transparent)]
    Link(#[from] ditto_net::NetError),
    /// The secure computation failed.
    #[error(transparent)]
    Mpc(#[from] ditto_mpc::MpcError),
    /// No QuantConfig near the calibrated one keeps the sample text in range.
    #[error(
        "no QuantConfig within {retries} steps of the calibrated one keeps the sample text in range; the \
         fixed-point reference still reports: {issues}"
    )]
    OutOfRange {
        /// Steps tried.
        retries: usize,
        /// The remaining issues.
        issues: String,
    },
    /// The demo's secure result disagreed with the fixed-point reference.
    #[error("secure result disagrees with the fixed-point reference: {0}")]
    Disagree(String),
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::File { path: path.to_path_buf(), source }
}

/// 16 random bytes from the OS.
pub fn os_random16() -> Result<[u8; 16], CliError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| CliError::Rng(e.to_string()))?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses 32 hex digits.
pub fn parse_hex16(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    if t.len() != 32 || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn read_hex16(path: &Path) -> Result<[u8; 16], CliError> {
    let text = fs::read_to_string(path).map_err(file_err(path))?;
    parse_hex16(&text).ok_or_else(|| CliError::KeyFormat {
        path: path.to_path_buf(),
        found: format!("{} characters", text.trim().len()),
    })
}

/// Reads a party key file.
pub fn read_key(path: &Path) -> Result<PartyKey, CliError> {
    Ok(PartyKey::from_bytes(read_hex16(path)?))
}

/// Reads a seed file.
pub fn read_seed(path: &Path) -> Result<Seed, CliError> {
    Ok(Seed::from_bytes(read_hex16(path)?))
}

/// Writes a new owner-only file (never overwrites).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(file_err(path))?;
    f.write_all(bytes).map_err(file_err(path))?;
    f.sync_all().map_err(file_err(path))
}

/// Arguments of `ditto provision`.
#[derive(clap::Args, Debug)]
pub struct ProvisionArgs {
    /// Directory to create the files in (it must not hold them already).
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes p0.key, p1.key, model.seed and the same three as a board's key page, board-keys.bin
/// (fresh from the OS RNG, mode 0600, never overwritten).
pub fn provision(a: &ProvisionArgs) -> Result<(), CliError> {
    fs::create_dir_all(&a.out).map_err(file_err(&a.out))?;
    let names = ["p0.key", "p1.key", "model.seed", "board-keys.bin"];
    if let Some(there) = names.iter().map(|n| a.out.join(n)).find(|p| p.exists()) {
        return Err(CliError::File {
            path: there,
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already provisioned"),
        });
    }
    let prov = Provisioning {
        keys: [PartyKey::from_bytes(os_random16()?), PartyKey::from_bytes(os_random16()?)],
        model: Seed::from_bytes(os_random16()?),
    };
    let secrets = [prov.keys[0].expose(), prov.keys[1].expose(), prov.model.expose()];
    for (name, bytes) in names.iter().zip(secrets) {
        write_private(&a.out.join(name), format!("{}\n", hex(bytes)).as_bytes())?;
    }
    let mut page = prov.to_page();
    let written = write_private(&a.out.join(names[3]), &page);
    page.zeroize();
    written?;
    say!(
        "wrote {0}/p0.key, {0}/p1.key (give each party its key), {0}/model.seed (a host dealer keeps \
         it) and {0}/board-keys.bin (the same three for a dealer board's key page: see firmware/README.md)",
        a.out.display()
    );
    Ok(())
}

/// A record of used sessions: one marker file per session in a directory (dealer:
/// `served-sessions.d`, party: `consumed-sessions-pN.d`), created with `create_new` and synced
/// with its directory before the session's first byte is served or its first opening: a
/// correlation is never used twice, across restarts and across processes sharing the state
/// directory (the file system makes the creation atomic: of two claims of one id, exactly one
/// succeeds). The line-per-id files of earlier versions (`served-sessions`, ...) are still read,
/// so their ids stay refused.
pub struct SessionRecord {
    dir: PathBuf,
    legacy: PathBuf,
}

impl SessionRecord {
    /// Opens (creating the directory) the dealer's record in `dir`.
    pub fn open(dir: &Path) -> Result<Self, CliError> {
        Self::open_named(dir, "served-sessions")
    }

    /// Opens (creating the directories) the record `name` in `dir`.
    pub fn open_named(dir: &Path, name: &str) -> Result<Self, CliError> {
        let record = dir.join(format!("{name}.d"));
        fs::create_dir_all(&record).map_err(file_err(&record))?;
        Ok(SessionRecord { dir: record, legacy: dir.join(name) })
    }

    /// Records `session`, refusing one already recorded. Atomic and durable: the marker is
    /// created exclusively, then it and the directory are synced.
    pub fn claim(&self, session: &SessionId) -> Result<(), CliError> {
        let id = format!("{:032x}", session.as_u128());
        let reused = || CliError::SessionReused { session: session.as_u128(), record: self.dir.clone() };
        match fs::read_to_string(&self.legacy) {
            Ok(text) if text.lines().any(|l| l.trim() == id) => return Err(reused()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CliError::File { path: self.legacy.clone(), source: e }),
        }
        let marker = self.dir.join(&id);
        let f = match fs::OpenOptions::new().write(true).create_new(true).open(&marker) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(reused()),
            Err(e) => return Err(CliError::File { path: marker, source: e }),
        };
        f.sync_all().map_err(file_err(&marker))?;
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(file_err(&self.dir))
    }
}

/// The default state directory: $XDG_STATE_HOME/ditto/dealer or ~/.local/state/ditto/dealer.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("ditto/dealer");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/ditto/dealer")
}
