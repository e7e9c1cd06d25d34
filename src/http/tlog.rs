//! The C2SP endpoints: `GET /checkpoint` and `GET /tile/<L>/<N>[.p/<W>]` for every member node
//! and regulator of the federation, `GET /tile/entries/<N>[.p/<W>]` for regulators only (entries
//! carry pseudonyms; each bundle read is logged like any regulator read), and the witness's
//! `POST /add-checkpoint` for member nodes and `GET /<sha256(origin) hex>/checkpoint` (the last
//! checkpoint it cosigned of that log, both signatures on it) for members and regulators. Answers are the spec's status codes and bodies.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tracing::warn;

use crate::{
    app::{
        audit_log::AuditLog,
        tlog::{Tlog, WitnessError},
    },
    audit::{
        tiles::{Tile, TileKind},
        witness::Refusal,
    },
    net::identity::{Identity, Role},
};

/// Largest request body taken (an add-checkpoint is under 4 KiB).
const MAX_BODY: usize = 64 * 1024;

/// The handlers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TlogApi {
    /// Callers from another federation are refused.
    pub federation: String,
    /// Tiles and the witness.
    pub tlog: Tlog,
    /// Where regulators' entry reads are logged.
    pub audit: AuditLog,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    answer(status, "text/plain; charset=utf-8", body.into())
}

fn cached(mut r: Answer, control: &'static str) -> Answer {
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static(control));
    r
}

impl TlogApi {
    /// Answers one request from `caller` (`None`: a certificate without a federation identity).
    pub(crate) async fn handle(&self, caller: Option<&Identity>, req: Request<Incoming>) -> Answer {
        let path = req.uri().path().to_owned();
        let route = if path == "/checkpoint" {
            "checkpoint"
        } else if path.starts_with("/tile/entries/") {
            "entries"
        } else if path.starts_with("/tile/") {
            "tile"
        } else if path == "/add-checkpoint" {
            "add-checkpoint"
        } else if path.len() == 1 + 64 + 11 && path.ends_with("/checkpoint") {
            "witnessed"
        } else {
            "other"
        };
        let r = self.route(caller, route, &path, req).await;
        metrics::counter!("bureau_tlog_requests_total", "route" => route, "status" => r.status().as_str().to_owned())
            .increment(1);
        r
    }

    async fn route(&self, caller: Option<&Identity>, route: &str, path: &str, req: Request<Incoming>) -> Answer {
        let Some(who) = caller.filter(|c| c.federation == self.federation) else {
            return text(StatusCode::FORBIDDEN, "a certificate of this federation is required\n");
        };
        let member_or_regulator = matches!(who.role, Role::Node | Role::Regulator);
        let allowed = if route == "add-checkpoint" { Method::POST } else { Method::GET };
        if route != "other" && req.method() != allowed {
            return text(StatusCode::METHOD_NOT_ALLOWED, format!("{route} takes {allowed}\n"));
        }
        match (req.method(), route) {
            (&Method::GET, "checkpoint") if member_or_regulator => match self.tlog.checkpoint().await {
                Ok(Some(note)) => cached(text(StatusCode::OK, note), "no-cache"),
                Ok(None) => text(StatusCode::NOT_FOUND, "this node signs no checkpoints\n"),
                Err(e) => unavailable(e),
            },
            (&Method::GET, "tile") if member_or_regulator => self.tile(path).await,
            (&Method::GET, "witnessed") if member_or_regulator => {
                match self.tlog.witnessed_checkpoint(&path[1..65]).await {
                    Ok(Some(note)) => cached(text(StatusCode::OK, note), "no-cache"),
                    Ok(None) => text(StatusCode::NOT_FOUND, "no checkpoint of that log cosigned here\n"),
                    Err(e) => unavailable(e),
                }
            }
            (&Method::GET, "entries") if who.role == Role::Regulator => {
                if let Err(e) = self.audit.log_read(&who.id, &format!("tlog {}", path.trim_start_matches('/'))).await {
                    return unavailable(e);
                }
                self.tile(path).await
            }
            (&Method::POST, "add-checkpoint") if who.role == Role::Node => {
                let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return text(StatusCode::BAD_REQUEST, "body unreadable or too large\n"),
                };
                let Ok(body) = std::str::from_utf8(&body) else {
                    return text(StatusCode::BAD_REQUEST, "body is not UTF-8\n");
                };
                self.add_checkpoint(body).await
            }
            (_, "other") => text(StatusCode::NOT_FOUND, "not found\n"),
            _ => text(StatusCode::FORBIDDEN, format!("not for a {} certificate\n", who.role.as_str())),
        }
    }

    async fn tile(&self, path: &str) -> Answer {
        let Ok(tile) = Tile::parse(path.trim_start_matches("/tile/")) else {
            return text(StatusCode::NOT_FOUND, "not a tile path\n");
        };
        match self.tlog.tile(tile).await {
            Ok(Some(bytes)) => {
                cached(answer(StatusCode::OK, "application/octet-stream", bytes), "public, max-age=31536000, immutable")
            }
            Ok(None) => text(
                StatusCode::NOT_FOUND,
                match tile.kind {
                    TileKind::Entries => "no such entry bundle in the durable log\n",
                    TileKind::Hash(_) => "no such tile in the durable log\n",
                },
            ),
            Err(e) => unavailable(e),
        }
    }

    async fn add_checkpoint(&self, body: &str) -> Answer {
        match self.tlog.add_checkpoint(body).await {
            Ok(lines) => text(StatusCode::OK, lines),
            Err(WitnessError::Refused(Refusal::Conflict(size))) => {
                answer(StatusCode::CONFLICT, "text/x.tlog.size", crate::audit::witness::conflict_body(size))
            }
            Err(WitnessError::Refused(r)) => {
                text(StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST), format!("{r}\n"))
            }
            Err(WitnessError::NotAWitness) => text(StatusCode::NOT_FOUND, "this node runs no witness\n"),
            Err(WitnessError::Contended) => text(StatusCode::SERVICE_UNAVAILABLE, "busy; retry\n"),
            Err(WitnessError::Store(e)) => unavailable(e),
        }
    }
}

fn unavailable(e: crate::app::StoreError) -> Answer {
    warn!(error = %e, "tlog request failed in the store");
    text(StatusCode::SERVICE_UNAVAILABLE, "the store cannot answer now\n")
}
