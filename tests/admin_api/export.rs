//! CSV export: chosen columns, filtered rows, formula neutralisation.

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::common::*;
use crate::{issues, Admin, GITLAB};

/// Today's date in UTC, `YYYY-MM-DD`.
fn utc_date() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10].to_owned()
}

/// Asserts an RFC 3339 UTC time with milliseconds, e.g.
/// `2026-12-03T18:28:48.123Z`, and returns it.
fn assert_rfc3339(cell: &str) -> SystemTime {
    let shape = cell.len() == 24
        && cell.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            23 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape, "{cell:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ");
    humantime::parse_rfc3339(cell).unwrap_or_else(|e| panic!("{cell:?}: {e}"))
}

/// The export's rows, header first.
fn rows(reply: &Reply) -> Vec<Vec<String>> {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    csv_records(&reply.body)
}

#[tokio::test]
async fn export_has_the_chosen_columns_in_order_and_the_filtered_rows() {
    let admin = Admin::start("").await;
    admin.add_repo("acme/widgets").await;
    admin
        .mint(json!({"description": "scanner", "admin": true}))
        .await;
    let ci = admin
        .mint(json!({"description": "ci, \"quoted\"", "grants": {"acme/widgets": "developer"}}))
        .await;
    let bot = admin
        .mint(json!({"description": "bot\nwith a line break"}))
        .await;

    let before = utc_date();
    let reply = admin
        .get("/admin/v1/tokens/export.csv?kind=enterprise&columns=status,id,description,grants")
        .await;
    let after = utc_date();
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let disposition = reply.headers["content-disposition"].to_str().unwrap();
    // Today's UTC date, or the next one if the request straddled midnight.
    let named = |date: &str| format!("attachment; filename=\"repogate-tokens-{date}.csv\"");
    assert!(
        disposition == named(&before) || disposition == named(&after),
        "{disposition:?} names {before} (UTC)"
    );

    let table = rows(&reply);
    assert_eq!(table[0], ["status", "id", "description", "grants"]);
    let mut body: Vec<_> = table[1..].to_vec();
    body.sort_by(|a, b| a[1].cmp(&b[1]));
    let mut expected = vec![
        vec![
            "active".to_owned(),
            ci.id.clone(),
            "ci, \"quoted\"".to_owned(),
            "acme/widgets=developer".to_owned(),
        ],
        vec![
            "active".to_owned(),
            bot.id.clone(),
            "bot\nwith a line break".to_owned(),
            "default role on later repositories only".to_owned(),
        ],
    ];
    expected.sort_by(|a, b| a[1].cmp(&b[1]));
    assert_eq!(body, expected);

    // The rows are the list's rows for the same filter, in the same order.
    let listed = admin.ids("kind=enterprise").await;
    let exported: Vec<String> = table[1..].iter().map(|r| r[1].clone()).collect();
    assert_eq!(exported, listed);
}

#[tokio::test]
async fn export_without_columns_has_every_column_in_default_order() {
    let admin = Admin::start("").await;
    admin.mint(json!({"description": "ci"})).await;

    let table = rows(&admin.get("/admin/v1/tokens/export.csv").await);
    let header = [
        "id",
        "description",
        "kind",
        "status",
        "grants",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ];
    assert_eq!(table[0], header);
    assert_eq!(table.len(), 2);
    assert_eq!(table[1][6], "admin", "created_by is the session's user");
}

#[tokio::test]
async fn export_neutralises_cells_a_spreadsheet_would_run_as_formulas() {
    let admin = Admin::start("").await;
    admin.add_repo("@evil").await;
    let formulas = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)"];
    for description in formulas {
        admin.mint(json!({ "description": description })).await;
    }
    admin
        .mint(json!({"description": "plain", "grants": {"@evil": "viewer"}}))
        .await;

    let table = rows(
        &admin
            .get("/admin/v1/tokens/export.csv?columns=description,grants")
            .await,
    );
    let cells: Vec<(String, String)> = table[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    for description in formulas {
        let quoted = format!("'{description}");
        assert!(
            cells.iter().any(|(d, _)| *d == quoted),
            "{description} not neutralised in {cells:?}"
        );
    }
    assert!(
        cells.contains(&("plain".to_owned(), "'@evil=viewer".to_owned())),
        "{cells:?}"
    );
    for (description, grants) in &cells {
        for cell in [description, grants] {
            assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?}");
        }
    }
}

#[tokio::test]
async fn export_time_cells_are_rfc3339_utc_times_and_empty_when_unset() {
    let up = upstream().await;
    let admin = Admin::start(&upstream_route(&up, GITLAB)).await;
    admin.add_repo("acme/widgets").await;
    let start = SystemTime::now();
    let used = admin
        .mint(json!({"description": "used, expiring", "admin": true, "expires_in": "30d"}))
        .await;
    let revoked = admin.mint(json!({"description": "revoked"})).await;
    let plain = admin.mint(json!({"description": "plain"})).await;
    assert_eq!(
        get(&admin.gate.url(&issues("acme/widgets")), &used.token)
            .await
            .status,
        200
    );
    let path = format!("/admin/v1/tokens/{}", revoked.id);
    assert_eq!(admin.delete(&path).await.status, 204);
    let end = SystemTime::now();

    let table = rows(
        &admin
            .get("/admin/v1/tokens/export.csv?columns=id,created_at,expires_at,last_used_at,revoked_at")
            .await,
    );
    assert_eq!(
        table[0],
        [
            "id",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at"
        ]
    );
    let row = |id: &str| {
        table[1..]
            .iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("{id} in {table:?}"))
            .clone()
    };
    // Times are kept in milliseconds, so widen the window by one.
    let within = |t: SystemTime| t + Duration::from_millis(1) >= start && t <= end;

    for token in [&used, &revoked, &plain] {
        let created = assert_rfc3339(&row(&token.id)[1]);
        assert!(within(created), "{:?}", row(&token.id));
    }

    let used_row = row(&used.id);
    let expires = assert_rfc3339(&used_row[2]);
    let thirty_days = Duration::from_secs(30 * 24 * 3600);
    assert!(within(expires - thirty_days), "{used_row:?}");
    assert!(within(assert_rfc3339(&used_row[3])), "{used_row:?}");
    assert_eq!(used_row[4], "", "never revoked");

    let revoked_row = row(&revoked.id);
    assert!(within(assert_rfc3339(&revoked_row[4])), "{revoked_row:?}");
    assert_eq!(revoked_row[2..4], ["", ""], "no expiry, never used");

    assert_eq!(row(&plain.id)[2..], ["", "", ""]);

    // The cells are the API's own times, as the record shows them.
    let view = admin
        .get(&format!("/admin/v1/tokens/{}", used.id))
        .await
        .json();
    assert_eq!(view["created_at"], used_row[1].as_str());
    assert_eq!(view["expires_at"], used_row[2].as_str());
    assert_eq!(view["last_used_at"], used_row[3].as_str());
}
