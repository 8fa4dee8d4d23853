//! Users as metadata: seeded once, changed, checked at login, and all of it still there after a
//! restart (the journal replays it); the password itself is never written.

#[allow(dead_code)] // the helpers other tests use
mod common;

use std::net::IpAddr;

use porter_core::broker::users::{LoginError, PasswordChange};
use porter_core::users::{Permission, User};
use porter_core::Broker;

use common::config;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

fn guest() -> (User, Option<String>) {
    let user = User {
        name: "guest".into(),
        tags: vec!["administrator".into()],
        loopback_only: true,
        ..User::default()
    };
    (user, Some("guest".into()))
}

#[tokio::test]
async fn users_are_seeded_once_checked_at_login_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(config(dir.path())).unwrap();
        assert!(broker.seed_users(vec![guest()], &[]).await.unwrap());
        assert!(
            !broker.seed_users(vec![guest()], &[]).await.unwrap(),
            "only on the first start"
        );
        assert_eq!(
            broker
                .login("guest", b"guest", LOOPBACK)
                .await
                .unwrap()
                .name,
            "guest"
        );
        assert_eq!(
            broker.login("guest", b"guest", REMOTE).await.unwrap_err(),
            LoginError::LoopbackOnly("guest".into())
        );
        assert_eq!(broker.permission("guest", "/"), Some(Permission::all()));

        let created = broker
            .put_user(
                "ops",
                PasswordChange::Set("s3cret".into()),
                vec!["monitoring".into()],
                false,
            )
            .await
            .unwrap();
        assert!(created);
        assert!(broker.login("ops", b"s3cret", REMOTE).await.is_ok());
        assert!(
            broker.login("ops", b"s3cret", REMOTE).await.is_ok(),
            "from the cache"
        );
        assert_eq!(
            broker.login("ops", b"guess", REMOTE).await.unwrap_err(),
            LoginError::WrongPassword("ops".into())
        );
        // A new password: the old one (cached or not) no longer logs in.
        broker
            .put_user(
                "ops",
                PasswordChange::Set("n3w".into()),
                vec!["monitoring".into()],
                false,
            )
            .await
            .unwrap();
        assert!(broker.login("ops", b"s3cret", REMOTE).await.is_err());
        assert!(broker.login("ops", b"n3w", REMOTE).await.is_ok());
        // Tags change without touching the password.
        broker
            .put_user(
                "ops",
                PasswordChange::Keep,
                vec!["administrator".into()],
                false,
            )
            .await
            .unwrap();
        assert!(broker
            .login("ops", b"n3w", REMOTE)
            .await
            .unwrap()
            .has_tag("administrator"));
        broker.shutdown().await.unwrap();
    }
    let broker = Broker::open(config(dir.path())).unwrap();
    assert_eq!(broker.users().len(), 2);
    assert!(broker.login("ops", b"n3w", REMOTE).await.is_ok());
    assert!(broker.login("nobody", b"x", REMOTE).await.is_err());
    broker.delete_user("ops").await.unwrap();
    assert!(broker.user("ops").is_none());
    assert!(broker.delete_user("ops").await.is_err());
    let journal: Vec<u8> = std::fs::read_dir(dir.path().join("metadata"))
        .unwrap()
        .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
        .collect();
    let text = String::from_utf8_lossy(&journal);
    assert!(text.contains("\"ops\""), "the journal holds the users");
    assert!(
        !text.contains("s3cret") && !text.contains("n3w\""),
        "but never a password"
    );
}
