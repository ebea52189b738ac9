//! Key and seed files, and the records of used sessions.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ditto_core::prg::{Seed, SessionId};
use ditto_dealer::keys::PartyKey;

use crate::NodeError;

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::File { path: path.to_path_buf(), source }
}

/// 16 random bytes from the OS.
pub fn os_random16() -> Result<[u8; 16], NodeError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| NodeError::Rng(e.to_string()))?;
    Ok(b)
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
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

fn read_hex16(path: &Path) -> Result<[u8; 16], NodeError> {
    let text = fs::read_to_string(path).map_err(file_err(path))?;
    parse_hex16(&text).ok_or_else(|| NodeError::KeyFormat {
        path: path.to_path_buf(),
        found: format!("{} characters", text.trim().len()),
    })
}

/// Reads a party key file.
pub fn read_key(path: &Path) -> Result<PartyKey, NodeError> {
    Ok(PartyKey::from_bytes(read_hex16(path)?))
}

/// Reads a dealer board's relay key file (`relay.key` from `ditto provision`).
pub fn read_relay_key(path: &Path) -> Result<ditto_dealer::keys::RelayKey, NodeError> {
    Ok(ditto_dealer::keys::RelayKey::from_bytes(read_hex16(path)?))
}

/// Reads a seed file.
pub fn read_seed(path: &Path) -> Result<Seed, NodeError> {
    Ok(Seed::from_bytes(read_hex16(path)?))
}

/// Writes a new owner-only file (never overwrites).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(file_err(path))?;
    f.write_all(bytes).map_err(file_err(path))?;
    f.sync_all().map_err(file_err(path))
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
    pub fn open(dir: &Path) -> Result<Self, NodeError> {
        Self::open_named(dir, "served-sessions")
    }

    /// Opens (creating the directories) the record `name` in `dir`.
    pub fn open_named(dir: &Path, name: &str) -> Result<Self, NodeError> {
        let record = dir.join(format!("{name}.d"));
        fs::create_dir_all(&record).map_err(file_err(&record))?;
        Ok(SessionRecord { dir: record, legacy: dir.join(name) })
    }

    /// Whether `session` is recorded.
    pub fn contains(&self, session: &SessionId) -> Result<bool, NodeError> {
        let id = format!("{:032x}", session.as_u128());
        match fs::read_to_string(&self.legacy) {
            Ok(text) if text.lines().any(|l| l.trim() == id) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NodeError::File { path: self.legacy.clone(), source: e }),
        }
        Ok(self.dir.join(&id).exists())
    }

    /// Records `session`, refusing one already recorded. Atomic and durable: the marker is
    /// created exclusively, then it and the directory are synced.
    pub fn claim(&self, session: &SessionId) -> Result<(), NodeError> {
        let id = format!("{:032x}", session.as_u128());
        let reused = || NodeError::SessionReused { session: session.as_u128(), record: self.dir.clone() };
        if self.contains(session)? {
            return Err(reused());
        }
        let marker = self.dir.join(&id);
        let f = match fs::OpenOptions::new().write(true).create_new(true).open(&marker) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(reused()),
            Err(e) => return Err(NodeError::File { path: marker, source: e }),
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
