//! CSV export of the filtered token table (RFC 4180 via the `csv` crate).

use super::error::AdminError;
use super::tokens::TokenView;

/// Every exportable column, in default order.
pub const COLUMNS: [&str; 10] = [
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

/// Parses `columns=a,b,c`; all columns when absent.
pub fn parse_columns(param: Option<&str>) -> Result<Vec<&'static str>, AdminError> {
    let Some(list) = param.filter(|p| !p.trim().is_empty()) else {
        return Ok(COLUMNS.to_vec());
    };
    list.split(',')
        .map(|name| {
            let name = name.trim();
            COLUMNS.iter().copied().find(|c| *c == name).ok_or_else(|| {
                AdminError::BadRequest(format!(
                    "unknown column `{name}`; known: {}",
                    COLUMNS.join(", ")
                ))
            })
        })
        .collect()
}

/// Renders rows as CSV with a header row.
pub fn render(rows: &[TokenView], columns: &[&str]) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(columns).expect("writing CSV to memory");
    for row in rows {
        let record = columns.iter().map(|c| neutralise(cell(row, c)));
        out.write_record(record).expect("writing CSV to memory");
    }
    out.into_inner().expect("flushing CSV to memory")
}

fn cell(row: &TokenView, column: &str) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    match column {
        "id" => row.id.clone(),
        "description" => row.description.clone(),
        "kind" => row.kind.as_str().to_owned(),
        "status" => row.status.as_str().to_owned(),
        "grants" => grants_text(row),
        "created_at" => row.created_at.clone(),
        "created_by" => row.created_by.clone(),
        "expires_at" => opt(&row.expires_at),
        "last_used_at" => opt(&row.last_used_at),
        "revoked_at" => opt(&row.revoked_at),
        other => unreachable!("column {other} was validated by parse_columns"),
    }
}

fn grants_text(row: &TokenView) -> String {
    use crate::access::TokenKind;
    match row.kind {
        TokenKind::Admin => "all repositories (admin)".to_owned(),
        TokenKind::User => "reviewer on repositories existing at creation".to_owned(),
        TokenKind::Enterprise if row.grants.is_empty() => {
            "default role on later repositories only".to_owned()
        }
        TokenKind::Enterprise => row
            .grants
            .iter()
            .map(|(repo, role)| format!("{repo}={role}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Prefixes a cell that a spreadsheet would run as a formula with `'`.
pub fn neutralise(cell: String) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tokens::Status;
    use super::*;
    use crate::access::Role;
    use proptest::prelude::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_kept() {
        for bad in ["=HYPERLINK(\"x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(bad.to_owned()).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralise("plain".into()), "plain");
        assert_eq!(neutralise(String::new()), "");
    }

    #[test]
    fn unknown_columns_are_refused_and_absent_means_all() {
        assert_eq!(parse_columns(None).unwrap().len(), COLUMNS.len());
        assert_eq!(parse_columns(Some("id, status")).unwrap(), ["id", "status"]);
        assert!(parse_columns(Some("id,digest")).is_err());
    }

    /// The neutralisation rule written out again: a cell starting with one
    /// of these gets a `'` in front, every other cell is kept as it is.
    const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

    fn after_rule(raw: String) -> String {
        if raw.starts_with(FORMULA_STARTS) {
            format!("'{raw}")
        } else {
            raw
        }
    }

    /// What a row holds in a column before the rule, written out from the
    /// view independently of `cell` and `grants_text`.
    fn expected_cell(row: &TokenView, column: &str) -> String {
        use crate::access::TokenKind;
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        match column {
            "id" => row.id.clone(),
            "description" => row.description.clone(),
            "kind" => match row.kind {
                TokenKind::Admin => "admin",
                TokenKind::User => "user",
                TokenKind::Enterprise => "enterprise",
            }
            .to_owned(),
            "status" => match row.status {
                Status::Active => "active",
                Status::Revoked => "revoked",
                Status::Expired => "expired",
            }
            .to_owned(),
            "grants" => match row.kind {
                TokenKind::Admin => "all repositories (admin)".to_owned(),
                TokenKind::User => "reviewer on repositories existing at creation".to_owned(),
                TokenKind::Enterprise if row.grants.is_empty() => {
                    "default role on later repositories only".to_owned()
                }
                TokenKind::Enterprise => {
                    let mut text = String::new();
                    for (i, (repo, role)) in row.grants.iter().enumerate() {
                        if i > 0 {
                            text.push_str("; ");
                        }
                        text.push_str(&format!("{repo}={}", role.as_str()));
                    }
                    text
                }
            },
            "created_at" => row.created_at.clone(),
            "created_by" => row.created_by.clone(),
            "expires_at" => or_empty(&row.expires_at),
            "last_used_at" => or_empty(&row.last_used_at),
            "revoked_at" => or_empty(&row.revoked_at),
            other => panic!("no column {other}"),
        }
    }

    /// Text an admin or a client could put in a cell: anything (newlines
    /// included), or something that opens with formula characters, quotes,
    /// commas, semicolons or line breaks.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "(?s).{0,30}",
            "[=+@\t\r\n\",;' -]{1,4}[a-zA-Z0-9=+@\"\r\n,;'(). -]{0,16}",
        ]
    }

    fn row() -> impl Strategy<Value = TokenView> {
        use crate::access::TokenKind;
        let kind = prop::sample::select(vec![
            TokenKind::Admin,
            TokenKind::User,
            TokenKind::Enterprise,
        ]);
        let status = prop::sample::select(vec![Status::Active, Status::Revoked, Status::Expired]);
        let grants =
            prop::collection::btree_map(text(), prop::sample::select(Role::ALL.to_vec()), 0..4);
        let times = (
            text(),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
        );
        (text(), text(), kind, status, grants, text(), times).prop_map(
            |(id, description, kind, status, grants, created_by, times)| {
                let (created_at, expires_at, last_used_at, revoked_at) = times;
                TokenView {
                    id,
                    description,
                    kind,
                    admin: kind == TokenKind::Admin,
                    grants,
                    status,
                    created_at,
                    created_by,
                    expires_at,
                    last_used_at,
                    revoked_at,
                }
            },
        )
    }

    /// Any choice of columns the API accepts: a subset, in any order, even
    /// with repeats (`columns=id,id` is valid).
    fn columns() -> impl Strategy<Value = Vec<&'static str>> {
        prop_oneof![
            prop::sample::subsequence(COLUMNS.to_vec(), 1..=COLUMNS.len()).prop_shuffle(),
            prop::collection::vec(prop::sample::select(COLUMNS.to_vec()), 1..=12),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_exported_cell_reads_back_as_its_value_after_the_formula_rule(
            rows in prop::collection::vec(row(), 0..4),
            columns in columns(),
        ) {
            let bytes = render(&rows, &columns);
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(bytes.as_slice());
            let records: Vec<csv::StringRecord> = reader
                .records()
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&bytes))))?;

            prop_assert_eq!(records.len(), rows.len() + 1, "{:?}", String::from_utf8_lossy(&bytes));
            let header: Vec<&str> = records[0].iter().collect();
            prop_assert_eq!(&header, &columns);
            for (row, record) in rows.iter().zip(&records[1..]) {
                let got: Vec<&str> = record.iter().collect();
                let want: Vec<String> = columns
                    .iter()
                    .map(|c| after_rule(expected_cell(row, c)))
                    .collect();
                prop_assert_eq!(got, want);
            }
            for cell in records.iter().flat_map(|r| r.iter()) {
                prop_assert!(!cell.starts_with(FORMULA_STARTS), "{:?}", cell);
            }
        }
    }
}
