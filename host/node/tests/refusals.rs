//! A request that does not fit the model is refused with its reason, by the client before it
//! sends anything and by a party before its session starts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use ditto_core::prg::{Prg, SessionId};
use ditto_models::bert::secure::BertShare;
use ditto_models::generate::Reveal;
use ditto_models::quant::QuantConfig;
use ditto_models::share_file::ModelShare;
use ditto_models::spec::ModelSpec;
use ditto_net::NetError;
use ditto_net::client::{RequestHead, read_answer};
use ditto_net::tls::Security;
use ditto_node::NodeError;
use ditto_node::client::{ClientRequest, run};
use ditto_node::party::accept_request;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn the_client_refuses_an_input_longer_than_the_model_before_connecting() {
    let model = ModelSpec::parse("seeded");
    let long = "x".repeat(100); // 102 byte tokens with [CLS] and [SEP]; the model has 64 positions
    let sec = Security::Plaintext;
    let one = [long.as_str()];
    let mut req = ClientRequest {
        model: &model,
        texts: &one,
        generate: 0,
        reveal: Reveal::Logits,
        session: SessionId([1; 16]),
        // Nobody listens there: an attempt to connect would fail differently.
        parties: ["127.0.0.1:9", "127.0.0.1:9"],
        security: &sec,
        timeout: Duration::from_secs(2),
    };
    let mut rng = Prg::with_counter(&[3; 16], 0);
    match run(&req, &mut rng).await {
        Err(NodeError::Model(e)) => assert!(e.to_string().contains("more than the 64 allowed"), "{e}"),
        other => panic!("expected a too-long input, got {other:?}"),
    }
    let empty = [""];
    req.texts = &empty;
    let gpt2 = ModelSpec::parse("seeded-gpt2");
    req.model = &gpt2;
    req.generate = 3;
    assert!(run(&req, &mut rng).await.unwrap_err().to_string().contains("empty"));
    let seventy = [&long[..70]];
    req.texts = &seventy;
    req.generate = 100;
    let e = run(&req, &mut rng).await.unwrap_err().to_string();
    assert!(
        e.contains("70-token prompt and 100 generated tokens need 170 positions; the model has 128"),
        "{e}"
    );
}

#[tokio::test]
async fn a_party_tells_the_client_why_it_refuses_a_request() {
    let cfg = ditto_models::seeded::config();
    let share = ModelShare::Bert(Box::new(BertShare::zeros(&cfg, &QuantConfig::accurate())));
    let party = common::p0_config("127.0.0.1:0", std::env::temp_dir(), Duration::from_secs(2));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Two prompt tokens but one row of one-hot shares: does not fit.
        let head = RequestHead {
            session: SessionId([2; 16]),
            seq: 2,
            generate: 0,
            count: cfg.vocab_size,
            reveal_token: false,
            batch: 1,
        };
        c.write_all(&head.encode()).await.unwrap();
        read_answer(&mut c, Duration::from_secs(5)).await
    });
    let mut skipped = Vec::new();
    let waited = tokio::time::timeout(
        Duration::from_secs(3),
        accept_request(&listener, &party, &share, |_, e| skipped.push(e.to_string())),
    )
    .await;
    assert!(waited.is_err(), "no request was accepted");
    match client.await.unwrap() {
        Err(NetError::Refused(why)) => {
            assert!(why.contains("1 x 2 tokens + 0 generated, 258 elements"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(skipped.len(), 1, "{skipped:?}");
}
