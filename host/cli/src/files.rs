//! `ditto provision` and the CLI error type.

use std::fs;
use std::path::PathBuf;

use ditto_core::prg::Seed;
use ditto_dealer::keys::{PartyKey, Provisioning, RelayKey};
use ditto_node::files::{hex, os_random16, write_private};
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
    /// A bad command-line value.
    #[error("{0}")]
    Usage(String),
    /// A dealer error.
    #[error(transparent)]
    Dealer(#[from] ditto_dealer::Error),
    /// A core error.
    #[error(transparent)]
    Core(#[from] ditto_core::Error),
    /// A network error.
    #[error("network: {0}")]
    Net(String),
    /// A party, client or record failed.
    #[error(transparent)]
    Node(Box<ditto_node::NodeError>),
    /// Training or distillation failed.
    #[error(transparent)]
    Distill(Box<ditto_distill::DistillError>),
    /// A model could not be loaded.
    #[error(transparent)]
    Model(#[from] ditto_models::ModelError),
    /// The link between the parties or to the dealer failed.
    #[error(transparent)]
    Link(#[from] ditto_net::NetError),
    /// The secure computation failed.
    #[error(transparent)]
    Mpc(#[from] ditto_mpc::MpcError),
    /// The demo's secure result disagreed with the fixed-point reference.
    #[error("secure result disagrees with the fixed-point reference: {0}")]
    Disagree(String),
}

impl From<ditto_node::NodeError> for CliError {
    fn from(e: ditto_node::NodeError) -> Self {
        CliError::Node(Box::new(e))
    }
}

impl From<ditto_distill::DistillError> for CliError {
    fn from(e: ditto_distill::DistillError) -> Self {
        CliError::Distill(Box::new(e))
    }
}

/// Arguments of `ditto provision`.
#[derive(clap::Args, Debug)]
pub struct ProvisionArgs {
    /// Directory to create the files in (it must not hold them already).
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes p0.key, p1.key, model.seed, relay.key and the same four as a board's key page,
/// board-keys.bin (fresh from the OS RNG, mode 0600, never overwritten).
pub fn provision(a: &ProvisionArgs) -> Result<(), CliError> {
    fs::create_dir_all(&a.out).map_err(|source| CliError::File { path: a.out.clone(), source })?;
    let names = ["p0.key", "p1.key", "model.seed", "relay.key", "board-keys.bin"];
    if let Some(there) = names.iter().map(|n| a.out.join(n)).find(|p| p.exists()) {
        return Err(CliError::File {
            path: there,
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already provisioned"),
        });
    }
    let prov = Provisioning {
        keys: [PartyKey::from_bytes(os_random16()?), PartyKey::from_bytes(os_random16()?)],
        model: Seed::from_bytes(os_random16()?),
        relay: RelayKey::from_bytes(os_random16()?),
    };
    let secrets = [prov.keys[0].expose(), prov.keys[1].expose(), prov.model.expose(), prov.relay.expose()];
    for (name, bytes) in names.iter().zip(secrets) {
        write_private(&a.out.join(name), format!("{}\n", hex(bytes)).as_bytes())?;
    }
    let mut page = prov.to_page();
    let written = write_private(&a.out.join(names[4]), &page);
    page.zeroize();
    written?;
    say!(
        "wrote {0}/p0.key, {0}/p1.key (give each party its key), {0}/model.seed (a host dealer keeps \
         it), {0}/relay.key (a dealer board's relay keeps it) and {0}/board-keys.bin (the same four for \
         the board's key page: see firmware/README.md)",
        a.out.display()
    );
    Ok(())
}
