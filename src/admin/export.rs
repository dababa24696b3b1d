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
    use super::*;
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

    proptest! {
        #[test]
        fn no_rendered_cell_starts_a_formula(description in ".{0,40}") {
            let row = TokenView {
                id: "rgt_000000000000".into(),
                description,
                kind: crate::access::TokenKind::Admin,
                admin: true,
                grants: Default::default(),
                status: super::super::tokens::Status::Active,
                created_at: "2026-01-01T00:00:00.000Z".into(),
                created_by: "admin".into(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            };
            let bytes = render(&[row], &COLUMNS);
            let mut reader = csv::Reader::from_reader(bytes.as_slice());
            for record in reader.records() {
                for cell in record.unwrap().iter() {
                    prop_assert!(!matches!(cell.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r')), "{cell:?}");
                }
            }
        }
    }
}
