//! What the node's tests share.

use std::path::PathBuf;
use std::time::Duration;

use ditto_core::Party;
use ditto_dealer::keys::PartyKey;
use ditto_net::tls::Security;
use ditto_node::party::{PartyConfig, Peer};

/// P0 listening for its peer on `peer`, plaintext links, no dealer (port 9), a fixed key.
pub fn p0_config(peer: &str, state: PathBuf, timeout: Duration) -> PartyConfig {
    PartyConfig {
        party: Party::P0,
        peer: Peer::Listen(peer.into()),
        dealer: "127.0.0.1:9".into(),
        key: PartyKey::from_bytes([7; 16]),
        state,
        threads: 1,
        timeout,
        security: Security::Plaintext,
        weights: ditto_mpc::WeightStore::default(),
    }
}
