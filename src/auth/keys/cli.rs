//! `tollgate keys create|list|rotate|revoke`: the keys API of a running gateway, from the
//! command line. The admin address and token come from flags or `TOLLGATE_ADMIN_URL` /
//! `TOLLGATE_ADMIN_TOKEN`; `--json` prints the API's answer, otherwise a table.
//!
//! The admin listener is plain HTTP on a private address, so a small blocking HTTP/1.1 client
//! over `std::net` is all it takes (no client library in the gateway binary for this).

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One command, parsed by `main`'s command line.
#[derive(Debug, Clone)]
pub enum Command {
    Create {
        consumer: String,
        name: Option<String>,
        models: Option<Vec<String>>,
        expires_at: Option<i64>,
    },
    List {
        consumer: Option<String>,
    },
    Rotate {
        id: String,
        grace_seconds: i64,
    },
    Revoke {
        id: String,
    },
}

/// Run `command` against the admin API at `admin` (e.g. `http://127.0.0.1:9090`). Returns
/// what to print, or why it failed.
pub fn run(
    command: &Command,
    admin: &str,
    token: Option<&str>,
    as_json: bool,
) -> Result<String, String> {
    let (method, path, body) = match command {
        Command::Create {
            consumer,
            name,
            models,
            expires_at,
        } => (
            "POST",
            "/admin/keys".to_string(),
            Some(
                json!({"consumer": consumer, "name": name, "models": models, "expires_at": expires_at}),
            ),
        ),
        Command::List { consumer } => (
            "GET",
            match consumer {
                Some(c) => format!("/admin/keys?consumer={c}"),
                None => "/admin/keys".to_string(),
            },
            None,
        ),
        Command::Rotate { id, grace_seconds } => (
            "POST",
            format!("/admin/keys/{id}/rotate"),
            Some(json!({"grace_seconds": grace_seconds})),
        ),
        Command::Revoke { id } => ("DELETE", format!("/admin/keys/{id}"), None),
    };
    let (status, answer) = request(admin, token, method, &path, body.as_ref())?;
    if !(200..300).contains(&status) {
        let why = answer["error"]["message"]
            .as_str()
            .map_or_else(|| answer.to_string(), str::to_string);
        return Err(format!("the gateway answered {status}: {why}"));
    }
    if as_json {
        return Ok(answer.to_string());
    }
    Ok(match command {
        Command::List { .. } => table(&answer),
        Command::Create { .. } | Command::Rotate { .. } => format!(
            "id:  {}\nkey: {}   (shown once: give it to the application)",
            answer["id"].as_str().unwrap_or(""),
            answer["key"].as_str().unwrap_or("")
        ),
        Command::Revoke { .. } => format!("{} revoked", answer["id"].as_str().unwrap_or("")),
    })
}

fn table(answer: &Value) -> String {
    let mut out = format!(
        "{:<18} {:<16} {:<12} {:<10} {:<8}\n",
        "ID", "CONSUMER", "PREFIX", "STATE", "SOURCE"
    );
    for k in answer["keys"].as_array().into_iter().flatten() {
        let s = |f: &str| k[f].as_str().unwrap_or("-").to_string();
        out.push_str(&format!(
            "{:<18} {:<16} {:<12} {:<10} {:<8}\n",
            s("id"),
            s("consumer"),
            s("prefix"),
            s("state"),
            s("source")
        ));
    }
    out
}

/// One HTTP/1.1 exchange with the admin listener.
fn request(
    admin: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let host = admin
        .strip_prefix("http://")
        .ok_or_else(|| format!("the admin address must be http://HOST:PORT, not `{admin}`"))?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(host).map_err(|e| format!("cannot reach {admin}: {e}"))?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    req.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("cannot send to {admin}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("no answer from {admin}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "the admin listener sent no HTTP answer".to_string())?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "the admin listener sent no status".to_string())?;
    let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    Ok((status, value))
}
