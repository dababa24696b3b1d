//! Admin API integration tests (DESIGN.md §6): a gateway on port 0 over a temp
//! store, driven over HTTP the way an operator's tooling drives it, with a
//! real upstream behind the proxy where a test needs a token to be used.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod export;
mod login;
mod registry;
mod tokens;
mod validation;

use common::*;
use http::Method;
use serde_json::{json, Value};

/// The gitlab preset on the test upstream.
pub const GITLAB: &str = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";

/// The account table of a premium plan (the harness default is enterprise).
pub const PREMIUM: &str = "[account]\nplan = \"premium\"\n";

/// The gitlab preset's read endpoint for `repo`, encoded as GitLab clients send it.
pub fn issues(repo: &str) -> String {
    format!("/api/v4/projects/{}/issues", repo.replace('/', "%2F"))
}

/// A gateway with the `admin` user and one open session.
pub struct Admin {
    pub gate: Gate,
    pub session: String,
}

/// A token minted through the API: the full string and the create response.
pub struct Minted {
    pub token: String,
    pub id: String,
    pub view: Value,
}

impl Admin {
    /// Registers `acme/widgets` with alias `42` through the API; returns the record.
    pub async fn register_widgets(&self) -> serde_json::Value {
        let body = serde_json::json!({"name": "acme/widgets", "aliases": ["42"]});
        let reply = self.post("/admin/v1/repos", &body).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        reply.json()
    }

    /// Starts a gateway from `rest` plus the `admin` user and logs in once.
    pub async fn start(rest: &str) -> Admin {
        let gate = gateway(&format!("{}{rest}", admin_user())).await;
        let reply = login(&gate, "admin", "pw").await;
        assert_eq!(reply.status, 200, "login: {:?}", reply.body);
        let session = reply.json()["session"]
            .as_str()
            .expect("a session string")
            .to_owned();
        Admin { gate, session }
    }

    /// Sends an authenticated admin request with a JSON (or raw) body.
    pub async fn call(&self, method: Method, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {}", self.session);
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        send(method, &self.gate.admin_url(path), &headers, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, "").await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, &body.to_string()).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PUT, path, &body.to_string()).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, "").await
    }

    /// Mints through `POST /admin/v1/tokens`, asserting 201.
    pub async fn mint(&self, body: Value) -> Minted {
        let reply = self.post("/admin/v1/tokens", &body).await;
        assert_eq!(reply.status, 201, "mint {body}: {:?}", reply.body);
        let view = reply.json();
        let token = view["token"]
            .as_str()
            .expect("the create response holds the token")
            .to_owned();
        let id = view["id"]
            .as_str()
            .expect("the create response holds the id")
            .to_owned();
        Minted { token, id, view }
    }

    /// Registers a repository through the API, asserting 201.
    pub async fn add_repo(&self, name: &str) {
        let reply = self.post("/admin/v1/repos", &json!({ "name": name })).await;
        assert_eq!(reply.status, 201, "add repo {name}: {:?}", reply.body);
    }

    /// The ids the token list returns for `query`, in response order.
    pub async fn ids(&self, query: &str) -> Vec<String> {
        let reply = self.get(&format!("/admin/v1/tokens?{query}")).await;
        assert_eq!(reply.status, 200, "list ?{query}: {:?}", reply.body);
        let body = reply.json();
        let ids: Vec<String> = body["tokens"]
            .as_array()
            .expect("a tokens array")
            .iter()
            .map(|t| t["id"].as_str().expect("an id").to_owned())
            .collect();
        assert_eq!(
            body["count"],
            ids.len(),
            "count matches the rows for ?{query}"
        );
        ids
    }

    /// How many tokens the store holds, as the list reports it.
    pub async fn token_count(&self) -> usize {
        self.ids("").await.len()
    }
}

/// `POST /admin/v1/login` without a session.
pub async fn login(gate: &Gate, user: &str, password: &str) -> Reply {
    let body = json!({ "user": user, "password": password }).to_string();
    let url = gate.admin_url("/admin/v1/login");
    send(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        &body,
    )
    .await
}

/// Asserts a JSON error body `{"error": code, "message": …}` with `status`;
/// returns the message.
pub fn assert_error(reply: &Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    let content_type = reply
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap());
    assert_eq!(
        content_type,
        Some("application/json"),
        "error bodies are JSON"
    );
    let body = reply.json();
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("a message in {body}"));
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}

/// Sorted copies, for comparing id sets.
pub fn sorted<T: AsRef<str>>(ids: &[T]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.as_ref().to_owned()).collect();
    ids.sort();
    ids
}
