//! Inbound routing against the store, on both databases: trunk rule → DID → org → agent.

mod common;

use common::{Db, TestApp};
use voxbridge::inbound::InboundRouter;
use voxbridge::outcome::Outcome;
use voxbridge::phone::PhoneNormalizer;

on_both_databases!(inbound_invites_route_to_the_orgs_inbound_agent);

async fn inbound_invites_route_to_the_orgs_inbound_agent(db: Db) {
    let app = TestApp::start_with(
        db,
        None,
        |c| c.orgs[1].numbers.push("+12025550199".into()),
        None,
    )
    .await;
    let carrier = common::loopback_trunk("127.0.0.0/8");
    let router = InboundRouter::new(
        app.store().clone(),
        vec![carrier],
        PhoneNormalizer::new("US").unwrap(),
    );
    let local = "127.0.0.1".parse().unwrap();

    for did in ["+12025550142", "12025550142", "2025550142"] {
        let route = router
            .route(local, did)
            .await
            .unwrap_or_else(|r| panic!("{did}: {r:?}"));
        assert_eq!(route.did, "+12025550142");
        assert_eq!(route.org.slug, "acme");
        assert_eq!(route.agent.name, "Inbound Support Agent");
        assert_eq!(route.agent.voice, "calm_support");
        assert_eq!(route.trunk, "carrier");
    }
    assert_eq!(
        router
            .route("203.0.113.9".parse().unwrap(), "+12025550142")
            .await
            .err(),
        Some(Outcome::SourceNotAllowed)
    );
    assert_eq!(
        router.route(local, "+12025550100").await.err(),
        Some(Outcome::InvalidNumber)
    );
    assert_eq!(
        router.route(local, "support").await.err(),
        Some(Outcome::InvalidNumber)
    );
    assert_eq!(
        router.route(local, "+12025550199").await.err(),
        Some(Outcome::NoAgent),
        "globex has no inbound agent"
    );

    let (_, org) = app.get("/v1/org", common::ACME_KEY).await;
    let acme = uuid::Uuid::parse_str(org["id"].as_str().unwrap()).unwrap();
    app.store().charge_minutes(acme, 1000).await.unwrap();
    assert_eq!(
        router.route(local, "+12025550142").await.err(),
        Some(Outcome::QuotaExhausted)
    );
    app.stop().await;
}
