//! Unit tests of `registry`.

use super::*;

fn open() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, Registry::open(store, DefaultRole::NO_ACCESS).unwrap())
}

#[test]
fn aliases_resolve_to_the_canonical_record() {
    let (_d, reg) = open();
    let rec = reg
        .add("acme/widgets", &["42".into()], RepoOrigin::Admin, 1)
        .unwrap();
    assert_eq!(reg.lookup("42").unwrap().name, "acme/widgets");
    assert_eq!(
        reg.lookup("acme/widgets").unwrap().created_seq,
        rec.created_seq
    );
    assert!(reg.lookup("acme").is_none());
    assert_eq!(reg.list().len(), 1);
}

#[test]
fn names_and_aliases_match_without_regard_to_case() {
    let (_d, reg) = open();
    reg.add("acme/widgets", &["Proj42".into()], RepoOrigin::Admin, 1)
        .unwrap();
    assert_eq!(reg.lookup("ACME/Widgets").unwrap().name, "acme/widgets");
    assert_eq!(reg.lookup("proj42").unwrap().name, "acme/widgets");
    assert!(matches!(
        reg.add("Acme/Widgets", &[], RepoOrigin::Admin, 1),
        Err(RegistryError::Exists(_))
    ));
    assert!(matches!(
        reg.add("b", &["PROJ42".into()], RepoOrigin::Admin, 1),
        Err(RegistryError::AliasTaken { .. })
    ));
    reg.remove("ACME/WIDGETS").unwrap();
    assert!(reg.list().is_empty());
}

#[test]
fn later_repositories_get_larger_sequence_numbers() {
    let (_d, reg) = open();
    let a = reg.add("a", &[], RepoOrigin::Admin, 1).unwrap();
    let b = reg.add("b", &[], RepoOrigin::Admin, 1).unwrap();
    assert!(b.created_seq > a.created_seq);
}

#[test]
fn clashing_names_and_aliases_are_refused_and_change_nothing() {
    let (_d, reg) = open();
    reg.add("a", &["1".into()], RepoOrigin::Admin, 1).unwrap();
    assert!(matches!(
        reg.add("a", &[], RepoOrigin::Admin, 1),
        Err(RegistryError::Exists(_))
    ));
    assert!(matches!(
        reg.add("1", &[], RepoOrigin::Admin, 1),
        Err(RegistryError::AliasTaken { .. })
    ));
    assert!(matches!(
        reg.add("b", &["1".into()], RepoOrigin::Admin, 1),
        Err(RegistryError::AliasTaken { .. })
    ));
    assert!(matches!(
        reg.add("c", &["x".into(), "x".into()], RepoOrigin::Admin, 1),
        Err(RegistryError::AliasTaken { .. })
    ));
    assert!(matches!(
        reg.add("../etc", &[], RepoOrigin::Admin, 1),
        Err(RegistryError::Invalid(_))
    ));
    assert_eq!(reg.list().len(), 1);
}

#[test]
fn removal_drops_the_name_and_its_aliases() {
    let (_d, reg) = open();
    reg.add("a", &["1".into()], RepoOrigin::Admin, 1).unwrap();
    assert!(
        matches!(reg.remove("1"), Err(RegistryError::NotFound(_))),
        "aliases are not removable names"
    );
    reg.remove("a").unwrap();
    assert!(reg.lookup("1").is_none());
    assert!(matches!(reg.remove("a"), Err(RegistryError::NotFound(_))));
}

#[test]
fn config_repositories_are_registered_once_and_keep_their_sequence() {
    let (_d, reg) = open();
    let repos = vec![config::Repository {
        name: "x".into(),
        aliases: vec!["7".into()],
    }];
    assert_eq!(reg.sync_config(&repos, 1).unwrap(), 1);
    let seq = reg.lookup("x").unwrap().created_seq;
    let renamed = vec![config::Repository {
        name: "x".into(),
        aliases: vec!["8".into()],
    }];
    assert_eq!(reg.sync_config(&renamed, 2).unwrap(), 0);
    assert_eq!(reg.lookup("8").unwrap().created_seq, seq);
    assert!(reg.lookup("7").is_none());
}

#[test]
fn an_admin_default_role_outlives_the_config_value_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reg = Registry::open(store.clone(), DefaultRole::NO_ACCESS).unwrap();
    reg.apply_config_default(DefaultRole::new(Role::Viewer).unwrap());
    assert_eq!(reg.default_role().role(), Role::Viewer);
    reg.set_default_role(DefaultRole::new(Role::Developer).unwrap())
        .unwrap();
    reg.apply_config_default(DefaultRole::new(Role::Viewer).unwrap());
    assert_eq!(reg.default_role().role(), Role::Developer);
    drop(reg);
    let again = Registry::open(store, DefaultRole::NO_ACCESS).unwrap();
    assert_eq!(again.default_role().role(), Role::Developer);
}

#[test]
fn names_are_checked_for_traversal_and_control_characters() {
    for bad in [
        "", "/a", "a/", "a//b", "a/../b", ".", "a\0b", "a%2Fb", "a\\b",
    ] {
        assert!(check_repo_name(bad).is_err(), "{bad:?}");
    }
    for good in ["a", "acme/widgets", "group/sub/project", "42", "KEY/slug"] {
        assert!(check_repo_name(good).is_ok(), "{good:?}");
    }
}
