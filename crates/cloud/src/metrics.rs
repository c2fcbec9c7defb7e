//! Request counters rendered in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

/// (method, route template, status)
type RequestKey = (String, String, u16);

#[derive(Default)]
pub struct Metrics {
    /// Per key: (count, total seconds).
    requests: Mutex<BTreeMap<RequestKey, (u64, f64)>>,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let e = map
            .entry((method.to_string(), route.to_string(), status))
            .or_insert((0, 0.0));
        e.0 += 1;
        e.1 += seconds;
    }

    pub fn render(&self) -> String {
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP dirbridge_http_requests_total HTTP requests served, by route and status.\n",
        );
        out.push_str("# TYPE dirbridge_http_requests_total counter\n");
        for ((m, r, s), (n, _)) in map.iter() {
            out.push_str(&format!("dirbridge_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}\n"));
        }
        out.push_str(
            "# HELP dirbridge_http_request_duration_seconds_sum Time spent serving requests.\n",
        );
        out.push_str("# TYPE dirbridge_http_request_duration_seconds_sum counter\n");
        for ((m, r, s), (_, secs)) in map.iter() {
            out.push_str(&format!(
                "dirbridge_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {secs:.6}\n"
            ));
        }
        out
    }
}

/// The label of a request's method: the standard methods by name, anything else as `other`
/// (a client can send any token as a method; each must not become a series of its own).
fn method_label(m: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|k| *k == m)
        .map(Method::as_str)
        .unwrap_or("other")
}

/// Middleware: count each request under its route template (never the raw path, which holds
/// ids; an unrouted path is `unmatched`) and its method label, so the series are bounded by the
/// routes whatever clients send.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = tenant::clock::monotonic();
    let resp = next.run(req).await;
    metrics.record(
        method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "meta",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)),
)]
pub async fn handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics.render(),
    )
}
