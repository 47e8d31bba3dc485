//! pretix's REST API, the few calls the box makes: authenticated with an
//! API token, JSON in and out over reqwest (rustls), list endpoints
//! followed page by page, and every failure sorted into what the organiser
//! must fix (token, permission, a name that does not exist) and what will
//! pass (network, pretix busy).

use crate::domain::time::Millis;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// One answer at most this big (a page of orders is far smaller).
const MAX_BODY: usize = 16 << 20;
/// Pages followed for one list at most (50 items each).
const MAX_PAGES: usize = 10_000;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PretixError {
    /// pretix refused the token: wrong, expired or revoked.
    #[error("pretix refused the API token (401): put a current API token of a team with access to this event in the token file")]
    Unauthorized,
    /// The token's team lacks a permission for this call.
    #[error("the API token's team may not {what} (pretix answered 403): in pretix, give the team that permission for this event")]
    Forbidden { what: String },
    /// No such organizer, event, list or object; `detail` is pretix's word.
    #[error("pretix found nothing to {what} (404): the event, a check-in list or a ticket was deleted there, or --organizer is wrong; import the event again")]
    NotFound { what: String, detail: String },
    /// pretix's answer about one ticket (`{"status": "error", "reason":
    /// "already_redeemed"}`): a business answer, not a fault of the link.
    #[error("pretix declined it ({reason}): {body}")]
    Declined { reason: String, body: String },
    /// pretix refused the request itself (400 and similar): not worth retrying.
    #[error("pretix refused the request ({status}): {body}")]
    Refused { status: u16, body: String },
    /// Network trouble, time-outs, 5xx, 429: try again later.
    #[error("{0}")]
    Retryable(String),
}

impl PretixError {
    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PretixError::Retryable(_))
    }
}

/// Where the box's pretix event is, and the token it uses.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `…/api/v1/organizers/{organizer}/`.
    root: Url,
    pub organizer: String,
    pub event: String,
    /// The Authorization header: `Token …` (a team's) or `Device …`.
    authorization: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("root", &self.root.as_str()).finish_non_exhaustive()
    }
}

/// A slug as pretix allows it for organizers and events.
fn slug(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 50
        || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(format!("{what} '{s}' is not a pretix short form (letters, digits, '-', '.'; the part of the event's address after the host)"));
    }
    Ok(())
}

impl Client {
    pub fn new(url: &str, organizer: &str, event: &str, token: &str) -> Result<Client, String> {
        let mut base = Url::parse(url.trim())
            .map_err(|e| format!("--url '{url}' is not an address ({e}): give pretix's address, e.g. https://pretix.eu"))?;
        // The token opens every order: plain HTTP only to this machine.
        let loopback = matches!(base.host(), Some(url::Host::Ipv4(a)) if a.is_loopback())
            || matches!(base.host(), Some(url::Host::Ipv6(a)) if a.is_loopback())
            || base.host_str() == Some("localhost");
        if !(base.scheme() == "https" || (base.scheme() == "http" && loopback)) {
            return Err(format!("--url '{url}' must start with https:// (plain http only for a pretix on this machine)"));
        }
        slug("organizer", organizer)?;
        slug("event", event)?;
        let token = token.trim();
        // A device's token (`venuebox pretix init`) is kept as "Device …".
        let (scheme, bare) = match token.strip_prefix(DEVICE_PREFIX) {
            Some(t) => ("Device", t),
            None => ("Token", token),
        };
        if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the pretix API token is empty or has spaces in it: paste the token alone".into()
            );
        }
        let token = format!("{scheme} {bare}");
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let root = base
            .join(&format!("api/v1/organizers/{organizer}/"))
            .map_err(|e| format!("--url '{url}': {e}"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("venuebox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Client {
            http,
            root,
            organizer: organizer.into(),
            event: event.into(),
            authorization: token,
        })
    }

    /// pretix's base address, as given.
    pub fn base_url(&self) -> String {
        let mut u = self.root.clone();
        u.set_path(self.root.path().split("api/v1/").next().unwrap_or("/"));
        u.to_string().trim_end_matches('/').to_string()
    }

    /// A path under the organizer (`events/…`), or `event:` + a path under
    /// the event.
    fn url(&self, path: &str) -> Url {
        let path = match path.strip_prefix("event:") {
            Some(rest) => format!("events/{}/{rest}", self.event),
            None => path.to_string(),
        };
        self.root.join(&path).expect("a relative path joins")
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(u16, Value), PretixError> {
        self.send_dated(req, what).await.map(|(status, v, _)| (status, v))
    }

    /// `send`, with pretix's clock: the answer's `Date` header (Unix ms).
    async fn send_dated(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(u16, Value, Option<Millis>), PretixError> {
        let resp = req
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                PretixError::Retryable(format!("cannot reach pretix: {}", without_url(&e)))
            })?;
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as Millis);
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            PretixError::Retryable(format!("pretix's answer broke off: {}", without_url(&e)))
        })? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(PretixError::Refused {
                    status,
                    body: "the answer is larger than 16 MiB".into(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = || String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        match status {
            200..=299 => Ok((status, json, date)),
            401 => Err(PretixError::Unauthorized),
            403 => Err(PretixError::Forbidden { what: what.to_string() }),
            400 | 404 if declined(&json).is_some() => Err(PretixError::Declined {
                reason: declined(&json).unwrap_or_default().to_string(),
                body: json.to_string(),
            }),
            404 => Err(PretixError::NotFound {
                what: what.to_string(),
                detail: json["detail"].as_str().unwrap_or_default().to_string(),
            }),
            408 | 425 | 429 | 500..=599 => Err(PretixError::Retryable(format!(
                "pretix is busy or failing ({status}): {}",
                text()
            ))),
            _ if json.is_object() || json.is_array() => {
                Err(PretixError::Refused { status, body: json.to_string() })
            }
            _ => Err(PretixError::Refused { status, body: text() }),
        }
    }

    /// One object (`what` names it for a 403 or 404).
    pub async fn get(&self, path: &str, what: &str) -> Result<Value, PretixError> {
        Ok(self.send(self.http.get(self.url(path)), what).await?.1)
    }

    /// `get`, with the time on pretix's clock when it answered (its `Date`
    /// header; `None` when it sent none).
    pub async fn get_dated(
        &self,
        path: &str,
        what: &str,
    ) -> Result<(Value, Option<Millis>), PretixError> {
        let (_, v, date) = self.send_dated(self.http.get(self.url(path)), what).await?;
        Ok((v, date))
    }

    /// Every result of a list endpoint, following `next` (same host only).
    pub async fn get_all(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Vec<Value>, PretixError> {
        let mut url = self.url(path);
        url.query_pairs_mut().extend_pairs(query);
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.send(self.http.get(url.clone()), what).await?.1;
            match page.get("results").and_then(Value::as_array) {
                Some(r) => out.extend(r.iter().cloned()),
                None => {
                    return Err(PretixError::Refused {
                        status: 200,
                        body: format!("a page of {what} without results"),
                    })
                }
            }
            match page.get("next").and_then(Value::as_str).map(Url::parse) {
                Some(Ok(next)) if next.origin() == self.root.origin() => url = next,
                Some(_) => {
                    return Err(PretixError::Refused {
                        status: 200,
                        body: format!("the next page of {what} is on another host"),
                    })
                }
                None => return Ok(out),
            }
        }
        Err(PretixError::Refused {
            status: 200,
            body: format!("more than {MAX_PAGES} pages of {what}"),
        })
    }

    /// A POST with a JSON body; `what` names the action for a 403 or 404.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<(u16, Value), PretixError> {
        let req = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        self.send(req, what).await
    }
}

/// How a device's token is kept in the token file: pretix authenticates
/// devices with `Authorization: Device <token>`.
pub const DEVICE_PREFIX: &str = "Device ";

/// What pretix says of a device it initialised.
#[derive(Clone, Debug)]
pub struct DeviceInit {
    pub organizer: String,
    pub device_id: i64,
    pub name: String,
    pub security_profile: String,
    /// `Device <api token>`, as the token file keeps it.
    pub token: String,
}

/// Initialises this box as a pretix device with a one-time setup token
/// from pretix's back office (Organizer → Devices → Connect a device):
/// pretix then shows which device checked whom in.
pub async fn initialize_device(url: &str, setup_token: &str) -> Result<DeviceInit, String> {
    // The same address checks as a client's (https, or loopback).
    let probe = Client::new(url, "x", "x", "x")?;
    let endpoint = probe.root.join("../../device/initialize").map_err(|e| e.to_string())?;
    let model = std::fs::read_to_string("/proc/device-tree/model")
        .map(|m| m.trim_end_matches('\0').trim().to_string())
        .unwrap_or_else(|_| std::env::consts::ARCH.to_string());
    let body = serde_json::json!({
        "token": setup_token.trim(), "hardware_brand": "venuebox", "hardware_model": model,
        "os_name": std::env::consts::OS, "software_brand": "venuebox",
        "software_version": env!("CARGO_PKG_VERSION"),
    });
    let resp = probe
        .http
        .post(endpoint)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("cannot reach pretix: {}", without_url(&e)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("pretix's answer broke off: {}", without_url(&e)))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status != 200 {
        return Err(match v["token"][0].as_str() {
            Some(why) => format!("pretix refused the setup token: {why} (make a new one in pretix: Organizer → Devices)"),
            None => format!("pretix refused to initialise the device ({status}): {v}"),
        });
    }
    let api_token =
        v["api_token"].as_str().filter(|t| !t.is_empty()).ok_or("pretix sent no device token")?;
    Ok(DeviceInit {
        organizer: v["organizer"].as_str().unwrap_or_default().to_string(),
        device_id: v["device_id"].as_i64().unwrap_or_default(),
        name: v["name"].as_str().unwrap_or_default().to_string(),
        security_profile: v["security_profile"].as_str().unwrap_or_default().to_string(),
        token: format!("{DEVICE_PREFIX}{api_token}"),
    })
}

/// The reason of pretix's answer about one ticket (check-in endpoints
/// answer `{"status": "error", "reason": "…"}` for a ticket they will not
/// take; a request pretix cannot read gets field errors instead).
fn declined(v: &Value) -> Option<&str> {
    (v["status"].as_str() == Some("error")).then(|| v["reason"].as_str()).flatten()
}

/// reqwest's message without the URL (it may hold a query string).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_built_under_the_organizer_and_names_are_checked() {
        let c = Client::new("https://pretix.example/base", "venue", "night", "abc123").unwrap();
        assert_eq!(
            c.url("event:orders/").as_str(),
            "https://pretix.example/base/api/v1/organizers/venue/events/night/orders/"
        );
        assert_eq!(
            c.url("checkinrpc/redeem/").as_str(),
            "https://pretix.example/base/api/v1/organizers/venue/checkinrpc/redeem/"
        );
        assert_eq!(c.base_url(), "https://pretix.example/base");
        assert!(Client::new("ftp://x", "venue", "night", "t").unwrap_err().contains("https://"));
        assert!(Client::new("http://pretix.example", "venue", "night", "t")
            .unwrap_err()
            .contains("https://"));
        assert!(Client::new("http://127.0.0.1:8000", "venue", "night", "t").is_ok());
        assert!(Client::new("https://x", "ven ue", "night", "t")
            .unwrap_err()
            .contains("short form"));
        assert!(Client::new("https://x", "venue", "night", " ").unwrap_err().contains("token"));
        assert!(!format!("{c:?}").contains("abc123"));
    }
}
