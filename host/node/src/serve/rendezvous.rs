//! P0's meeting point of a serving pair: each link P1 opens is handed to the request of the id
//! its routing frame names, whichever of the two arrived first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ditto_core::prg::SessionId;
use ditto_net::link::{Link, Route};
use tokio::sync::oneshot;

use crate::NodeError;

/// P0's meeting point of links and requests, by request id.
#[derive(Default)]
pub(super) struct Rendezvous {
    slots: Mutex<HashMap<SessionId, Slot>>,
}

enum Slot {
    /// The link came first.
    Link(Box<(Link, Route)>),
    /// The request came first and waits.
    Waiting(oneshot::Sender<(Link, Route)>),
}

impl Rendezvous {
    /// A link for `session`: to its waiting request, or kept (dropped after `wait` unless a
    /// request takes it).
    pub(super) fn offer(self: &Arc<Self>, session: SessionId, link: (Link, Route), wait: Duration) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let link = match slots.remove(&session) {
            Some(Slot::Waiting(tx)) => match tx.send(link) {
                Ok(()) => return,
                Err(link) => link,
            },
            // A second link for one session: the first one stays, this one is dropped.
            Some(first @ Slot::Link(_)) => {
                slots.insert(session, first);
                return;
            }
            None => link,
        };
        slots.insert(session, Slot::Link(Box::new(link)));
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let mut slots = me.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches!(slots.get(&session), Some(Slot::Link(_))) {
                slots.remove(&session);
            }
        });
    }

    /// The link for `session`, waiting up to `wait` for P1 to open it.
    pub(super) async fn take(&self, session: SessionId, wait: Duration) -> Result<(Link, Route), NodeError> {
        let rx = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match slots.remove(&session) {
                Some(Slot::Link(l)) => return Ok(*l),
                // A second request of one session is refused by its claim before it gets here.
                Some(Slot::Waiting(_)) | None => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(session, Slot::Waiting(tx));
                    rx
                }
            }
        };
        let got = tokio::time::timeout(wait, rx).await;
        if got.is_err() {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches!(slots.get(&session), Some(Slot::Waiting(_))) {
                slots.remove(&session);
            }
        }
        match got {
            Ok(Ok(link)) => Ok(link),
            _ => Err(ditto_net::NetError::Timeout {
                what: "the peer's link for this session",
                secs: wait.as_secs_f64(),
            }
            .into()),
        }
    }
}
