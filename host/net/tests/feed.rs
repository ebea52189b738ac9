//! The dealer stream at a party, from memory, a file and a dealer server: P0 gets its seeds
//! only, P1 its seeds and every step in order; a stream cut short or for another plan is an
//! error, never a hang.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::plan::Plan;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};
use ditto_net::NetError;
use ditto_net::dealer::{DealerFeed, Source};

const SID: SessionId = SessionId([5; 16]);
const SET: ShareSetId = ShareSetId([6; 16]);
const IDS: (SessionId, ShareSetId) = (SID, SET);

fn plan() -> Plan {
    ditto_core::plan::Plan::from_bytes(include_bytes!("../../../testdata/plans/bert-tiny-seq4.plan")).unwrap()
}

fn keys() -> [PartyKey; 2] {
    [PartyKey::from_bytes([1; 16]), PartyKey::from_bytes([2; 16])]
}

fn stream(p: Party, plan: &Plan) -> Vec<u8> {
    let seeds = DealerSeeds::new(Seed::from_bytes([3; 16]), Seed::from_bytes([4; 16]));
    let spec = SessionSpec::new(Generation { session: SID, share_set: SET, salt: Salt([7; 16]) }, &seeds);
    let mut out = Vec::new();
    let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
    write_stream(p, &mut src, &spec, &keys()[p.index()], &mut out, &mut vec![0u8; scratch_len(spec.chunk)])
        .unwrap();
    out
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn p0_and_p1_read_their_streams_from_memory_and_files() {
    let plan = plan();
    for p in [Party::P0, Party::P1] {
        let bytes = stream(p, &plan);
        let path =
            std::env::temp_dir().join(format!("ditto-feed-{}-{}.dstream", std::process::id(), p.index()));
        std::fs::write(&path, &bytes).unwrap();
        for src in [Source::Memory(Arc::new(bytes.clone())), Source::File(path.clone())] {
            let mut feed = DealerFeed::open(src, keys()[p.index()].clone(), p, IDS, &plan, T).await.unwrap();
            let _ = feed.seeds();
            if p == Party::P1 {
                for (i, s) in plan.steps.iter().enumerate() {
                    assert_eq!(feed.step(i as u32).await.unwrap().len() as u64, s.p1_correction_bytes());
                }
            }
            feed.finish().await.unwrap();
        }
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn cut_streams_and_other_plans_are_errors() {
    let plan = plan();
    let bytes = stream(Party::P1, &plan);
    let cut = Arc::new(bytes[..bytes.len() / 2].to_vec());
    let mut feed =
        DealerFeed::open(Source::Memory(cut), keys()[1].clone(), Party::P1, IDS, &plan, T).await.unwrap();
    let mut err = None;
    for i in 0..plan.steps.len() {
        if let Err(e) = feed.step(i as u32).await {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("a cut stream must fail");
    assert!(e.to_string().contains("truncated"), "{e}");
    // A party with another plan refuses the stream at once.
    let other =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../../testdata/plans/bert-tiny-seq5.plan"))
            .unwrap();
    let mem = || Source::Memory(Arc::new(bytes.clone()));
    let e = DealerFeed::open(mem(), keys()[1].clone(), Party::P1, IDS, &other, T).await.unwrap_err();
    assert!(matches!(e, NetError::Dealer(ditto_dealer::Error::PlanHash { .. })), "{e}");
    // A party holding another sharing refuses a stream carrying this one's masks.
    let mine = ShareSetId([9; 16]);
    let e = DealerFeed::open(mem(), keys()[1].clone(), Party::P1, (SID, mine), &plan, T).await.unwrap_err();
    assert!(
        matches!(e, NetError::Dealer(ditto_dealer::Error::ShareSet { expected, got }) if expected == mine && got == SET),
        "{e}"
    );
    // A missing file names the problem.
    let e = DealerFeed::open(
        Source::File("/nonexistent/x.dstream".into()),
        keys()[1].clone(),
        Party::P1,
        IDS,
        &plan,
        T,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("opening the dealer stream file"), "{e}");
}
