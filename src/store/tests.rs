//! Unit tests of `store`.

use super::*;

/// Opens a store that this process just closed. sled's background threads
/// release the folder lock a moment after the last handle is dropped, so
/// an immediate reopen may still see it held; only `Locked` is retried.
fn reopen(path: &Path) -> Result<Store, StoreError> {
    for _ in 0..100 {
        match Store::open(path) {
            Err(StoreError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => return other,
        }
    }
    Store::open(path)
}
use crate::access::{Grant, Role, TokenKind};
use crate::token;

fn sample_token(seq: u64) -> (token::Minted, StoredToken) {
    let minted = token::generate().unwrap();
    let stored = StoredToken {
        digest: minted.digest,
        record: TokenRecord {
            id: minted.id,
            description: "ci".into(),
            scope: Scope {
                kind: TokenKind::Enterprise,
                grants: [(
                    "acme/app".to_string(),
                    Grant {
                        role: Role::Developer,
                        repo_seq: 1,
                    },
                )]
                .into(),
                minted_seq: seq,
            },
            created_at: 1,
            created_by: "admin".into(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        },
    };
    (minted, stored)
}

#[tokio::test]
async fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stored) = sample_token(3);
    let repo = RepoRecord {
        name: "acme/app".into(),
        aliases: vec!["42".into()],
        created_at: 5,
        created_seq: 1,
        origin: RepoOrigin::Admin,
    };
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_token(&stored).unwrap();
        store.put_repo(&repo).unwrap();
        store
            .set_default_role(DefaultRole::new(Role::Viewer).unwrap())
            .unwrap();
        store
            .append_audit(&AuditEntry {
                at: 9,
                actor: "admin".into(),
                client: "127.0.0.1".into(),
                action: "token.mint".into(),
                target: stored.record.id.to_string(),
                outcome: "ok".into(),
            })
            .unwrap();
        store.flush().await.unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_eq!(
        store.token(&stored.record.id).unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.repos().unwrap(), vec![repo]);
    assert_eq!(
        store.default_role().unwrap().map(|d| d.role()),
        Some(Role::Viewer)
    );
    assert_eq!(store.audit(10, None).unwrap()[0].1.action, "token.mint");
}

#[test]
fn sequence_numbers_keep_growing_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap().next_seq().unwrap();
    let second = reopen(dir.path()).unwrap().next_seq().unwrap();
    assert!(second > first, "{second} after {first}");
}

#[test]
fn update_changes_only_the_named_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (_, a) = sample_token(1);
    let (_, b) = sample_token(2);
    store.insert_token(&a).unwrap();
    store.insert_token(&b).unwrap();
    let revoked = store
        .update_token(&a.record.id, |r| r.revoked_at = Some(7))
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(7));
    assert_eq!(
        store
            .token(&b.record.id)
            .unwrap()
            .unwrap()
            .record
            .revoked_at,
        None
    );
    let missing = token::generate().unwrap().id;
    assert_eq!(
        store
            .update_token(&missing, |r| r.revoked_at = Some(7))
            .unwrap(),
        None
    );
}

#[test]
fn audit_lists_newest_first_with_paging() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut seqs = Vec::new();
    for i in 0..5 {
        let entry = AuditEntry {
            at: i,
            actor: "a".into(),
            client: "c".into(),
            action: format!("act{i}"),
            target: String::new(),
            outcome: "ok".into(),
        };
        seqs.push(store.append_audit(&entry).unwrap());
    }
    let page: Vec<_> = store
        .audit(2, None)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.action)
        .collect();
    assert_eq!(page, ["act4", "act3"]);
    let next: Vec<_> = store
        .audit(2, Some(seqs[3]))
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.action)
        .collect();
    assert_eq!(next, ["act2", "act1"]);
}

#[test]
fn a_second_opener_of_the_same_folder_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let second = Store::open(dir.path())
        .err()
        .expect("second open must fail");
    assert!(matches!(second, StoreError::Locked(_)), "{second}");
    assert!(second.to_string().contains("another process"));
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(FORMAT_KEY, &7u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = reopen(dir.path()).err().expect("newer format must fail");
    assert!(
        matches!(err, StoreError::NewerFormat { found: 7, .. }),
        "{err}"
    );
}

#[test]
fn a_damaged_store_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_token(&sample_token(1).1).unwrap();
        store.db.flush().unwrap();
    }
    // Overwrite sled's files with garbage.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::write(&path, b"this is not a sled file at all, not even close").unwrap();
        }
    }
    let err = reopen(dir.path())
        .err()
        .expect("a damaged store must not open");
    assert!(!matches!(err, StoreError::Locked(_)), "{err}");
}

#[test]
fn a_damaged_record_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = token::generate().unwrap().id;
    store
        .tokens
        .insert(id.as_bytes(), b"{not json".to_vec())
        .unwrap();
    assert!(matches!(
        store.token(&id),
        Err(StoreError::Corrupt { what: "token", .. })
    ));
    assert!(store.update_token(&id, |r| r.revoked_at = Some(1)).is_err());
}
