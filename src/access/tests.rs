//! Unit tests of `access`.

use super::*;

/// The role table of DESIGN.md §2, written out cell by cell, independent
/// of the bit sets above: (role, read, comment, clone, integrate, write,
/// review, maintain, scan).
const TABLE: [(Role, [bool; 8]); 7] = [
    (
        Role::NoAccess,
        [false, false, false, false, false, false, false, false],
    ),
    (
        Role::Viewer,
        [true, true, true, false, false, false, false, false],
    ),
    (
        Role::Developer,
        [true, true, true, true, true, false, false, false],
    ),
    (
        Role::Reviewer,
        [true, true, true, true, true, true, false, false],
    ),
    (
        Role::Maintainer,
        [true, true, true, true, true, false, true, false],
    ),
    (
        Role::RepositoryAdmin,
        [true, true, true, true, true, true, true, false],
    ),
    (
        Role::CompanyAdmin,
        [true, true, true, true, true, true, true, false],
    ),
];

const VALID: Validity = Validity {
    revoked_at: None,
    expires_at: None,
};

/// A scope whose grants name (repository, role, repository sequence).
fn scope(kind: TokenKind, grants: &[(&str, Role, u64)], minted_seq: u64) -> Scope {
    Scope {
        kind,
        grants: grants
            .iter()
            .map(|(r, role, seq)| {
                (
                    r.to_string(),
                    Grant {
                        role: *role,
                        repo_seq: *seq,
                    },
                )
            })
            .collect(),
        minted_seq,
    }
}

fn repo(name: &str, created_seq: u64) -> Target<'_> {
    Target::Registered { name, created_seq }
}

#[test]
fn every_cell_of_the_role_table_holds() {
    for (role, row) in TABLE {
        for (action, expected) in Action::ALL.into_iter().zip(row) {
            assert_eq!(role.allows(action), expected, "{role} × {action}");
        }
    }
}

#[test]
fn every_cell_holds_through_an_enterprise_grant() {
    for (role, row) in TABLE {
        let s = scope(TokenKind::Enterprise, &[("acme/app", role, 3)], 10);
        for (action, expected) in Action::ALL.into_iter().zip(row) {
            let got = decide(
                &s,
                VALID,
                repo("acme/app", 3),
                action,
                DefaultRole::NO_ACCESS,
                0,
            );
            assert_eq!(got.is_ok(), expected, "{role} × {action}: {got:?}");
        }
    }
}

#[test]
fn admin_token_holds_every_action_on_every_repository() {
    let s = scope(TokenKind::Admin, &[], 10);
    for action in Action::ALL {
        for target in [
            repo("old", 1),
            repo("new", 99),
            Target::Unregistered("x"),
            Target::Every,
        ] {
            assert_eq!(
                decide(&s, VALID, target, action, DefaultRole::NO_ACCESS, 0),
                Ok(())
            );
        }
    }
}

#[test]
fn scan_is_refused_to_every_non_admin_token_whatever_its_role() {
    let user = scope(TokenKind::User, &[], 10);
    let ent = scope(TokenKind::Enterprise, &[("a", Role::CompanyAdmin, 1)], 10);
    for s in [&user, &ent] {
        let got = decide(
            s,
            VALID,
            repo("a", 1),
            Action::Scan,
            DefaultRole::NO_ACCESS,
            0,
        );
        assert_eq!(got, Err(Denial::ScanNeedsAdmin));
    }
}

#[test]
fn user_token_is_reviewer_on_repositories_that_existed_at_minting() {
    let s = scope(TokenKind::User, &[], 10);
    for action in Action::ALL {
        let got = decide(&s, VALID, repo("old", 9), action, DefaultRole::NO_ACCESS, 0);
        assert_eq!(got.is_ok(), Role::Reviewer.allows(action), "{action}");
    }
}

#[test]
fn user_token_has_no_access_to_repositories_created_later_whatever_the_default() {
    let s = scope(TokenKind::User, &[], 10);
    let default = DefaultRole::new(Role::Reviewer).unwrap();
    let got = decide(&s, VALID, repo("new", 11), Action::Read, default, 0);
    assert!(matches!(
        got,
        Err(Denial::RoleLacksAction {
            role: Role::NoAccess,
            ..
        })
    ));
}

#[test]
fn enterprise_token_gets_the_current_default_role_on_later_repositories() {
    let s = scope(TokenKind::Enterprise, &[("chosen", Role::Viewer, 4)], 10);
    for default in [
        Role::NoAccess,
        Role::Viewer,
        Role::Developer,
        Role::Reviewer,
    ] {
        let d = DefaultRole::new(default).unwrap();
        for action in Action::ALL {
            let got = decide(&s, VALID, repo("later", 11), action, d, 0);
            let expected = action != Action::Scan && default.allows(action);
            assert_eq!(got.is_ok(), expected, "default {default} × {action}");
        }
    }
}

#[test]
fn default_role_never_widens_repositories_that_existed_at_minting() {
    let s = scope(TokenKind::Enterprise, &[("chosen", Role::Viewer, 4)], 10);
    let reviewer = DefaultRole::new(Role::Reviewer).unwrap();
    let unchosen = decide(&s, VALID, repo("unchosen", 4), Action::Read, reviewer, 0);
    assert!(matches!(
        unchosen,
        Err(Denial::RoleLacksAction {
            role: Role::NoAccess,
            ..
        })
    ));
    let chosen = decide(&s, VALID, repo("chosen", 4), Action::Write, reviewer, 0);
    assert!(matches!(
        chosen,
        Err(Denial::RoleLacksAction {
            role: Role::Viewer,
            ..
        })
    ));
}

#[test]
fn a_grant_does_not_carry_over_to_a_repository_re_created_under_its_name() {
    // Granted maintainer on "r" as registered at seq 2; "r" is later
    // removed and registered again (seq 12): a later repository now.
    let s = scope(TokenKind::Enterprise, &[("r", Role::Maintainer, 2)], 10);
    let viewer = DefaultRole::new(Role::Viewer).unwrap();
    assert_eq!(
        decide(&s, VALID, repo("r", 2), Action::Maintain, viewer, 0),
        Ok(())
    );
    let again = decide(&s, VALID, repo("r", 12), Action::Maintain, viewer, 0);
    assert!(
        matches!(
            again,
            Err(Denial::RoleLacksAction {
                role: Role::Viewer,
                ..
            })
        ),
        "{again:?}"
    );
    assert_eq!(
        decide(&s, VALID, repo("r", 12), Action::Read, viewer, 0),
        Ok(())
    );
}

#[test]
fn non_admin_tokens_never_reach_unregistered_or_unnamed_repositories() {
    let reviewer = DefaultRole::new(Role::Reviewer).unwrap();
    for s in [
        scope(TokenKind::User, &[], 5),
        scope(TokenKind::Enterprise, &[("x", Role::CompanyAdmin, 1)], 5),
    ] {
        let unreg = decide(
            &s,
            VALID,
            Target::Unregistered("x"),
            Action::Read,
            reviewer,
            0,
        );
        assert_eq!(unreg, Err(Denial::Unregistered("x".into())));
        let every = decide(&s, VALID, Target::Every, Action::Read, reviewer, 0);
        assert_eq!(every, Err(Denial::NeedsEveryRepository(Action::Read)));
    }
}

#[test]
fn revoked_and_expired_tokens_allow_nothing_even_for_admins() {
    let s = scope(TokenKind::Admin, &[], 1);
    let revoked = Validity {
        revoked_at: Some(5),
        expires_at: None,
    };
    let expired = Validity {
        revoked_at: None,
        expires_at: Some(100),
    };
    assert_eq!(
        decide(
            &s,
            revoked,
            repo("a", 0),
            Action::Read,
            DefaultRole::NO_ACCESS,
            1
        ),
        Err(Denial::Revoked)
    );
    assert_eq!(
        decide(
            &s,
            expired,
            repo("a", 0),
            Action::Read,
            DefaultRole::NO_ACCESS,
            100
        ),
        Err(Denial::Expired)
    );
    assert_eq!(
        decide(
            &s,
            expired,
            repo("a", 0),
            Action::Read,
            DefaultRole::NO_ACCESS,
            99
        ),
        Ok(())
    );
}

#[test]
fn default_role_above_reviewer_is_rejected() {
    for role in Role::ALL {
        let ok = DefaultRole::new(role).is_ok();
        assert_eq!(ok, role <= Role::Reviewer, "{role}");
    }
}

#[test]
fn names_round_trip_and_unknown_names_are_errors() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
    }
    for action in Action::ALL {
        assert_eq!(action.as_str().parse::<Action>(), Ok(action));
    }
    assert_eq!(
        "owner".parse::<Role>(),
        Err(ParseError::UnknownRole("owner".into()))
    );
    assert_eq!(
        "push".parse::<Action>(),
        Err(ParseError::UnknownAction("push".into()))
    );
}

#[test]
fn plans_mint_the_member_kind_of_the_product_page() {
    assert_eq!(Plan::Freemium.member_kind(), TokenKind::User);
    assert_eq!(Plan::Premium.member_kind(), TokenKind::User);
    assert_eq!(Plan::Enterprise.member_kind(), TokenKind::Enterprise);
}
