//! CSV export: chosen columns, filtered rows, formula neutralisation.

use serde_json::json;

use crate::common::Reply;
use crate::Admin;

/// The export's rows, header first, read with the `csv` crate.
fn rows(reply: &Reply) -> Vec<Vec<String>> {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(reply.body.as_ref());
    reader
        .records()
        .map(|r| {
            r.expect("the export is valid CSV")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
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

    let reply = admin
        .get("/admin/v1/tokens/export.csv?kind=enterprise&columns=status,id,description,grants")
        .await;
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let disposition = reply.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"repogate-tokens-"),
        "{disposition}"
    );
    assert!(disposition.ends_with(".csv\""), "{disposition}");

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
