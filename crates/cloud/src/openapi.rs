//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the code: the request and
//! response types derive `utoipa::ToSchema` (their serde attributes give `required`, enums and
//! `additionalProperties: false`), every handler carries `#[utoipa::path]` with every status it
//! answers, and [`Conventions`] adds what every operation shares: path parameters, security,
//! and the JSON error document for every non-2xx status. A test checks the document against
//! the router both ways. The OpenID Connect endpoints under `/t/{domain}` are described by
//! their own discovery document instead.

use std::sync::OnceLock;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, SecurityRequirement,
};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "dirbridge cloud API"),
    paths(
        crate::oidc::apps::list,
        crate::oidc::apps::create,
        crate::oidc::apps::read,
        crate::oidc::apps::update,
        crate::oidc::apps::remove,
        crate::oidc::apps::add_secret,
        crate::oidc::apps::remove_secret,
        crate::oidc::apps::rotate_keys,
        crate::auth::sign_in,
        crate::auth::sign_out,
        crate::auth::revoke,
        crate::auth::me,
        crate::api::sspr::get_methods,
        crate::api::sspr::put_methods,
        crate::api::sspr::get_my_methods,
        crate::api::sspr::put_my_methods,
        crate::api::sspr::clear_lockout,
        crate::api::sspr::begin_authenticator,
        crate::api::sspr::confirm_authenticator,
        crate::api::sspr::start,
        crate::api::sspr::session_status,
        crate::api::sspr::send_code,
        crate::api::sspr::verify,
        crate::api::sspr::set_password,
        crate::api::sspr::result,
        crate::api::sspr::change,
        crate::api::writeback::claim,
        crate::api::writeback::report_result,
        crate::api::writeback::own,
        crate::api::writeback::disable_own,
        crate::api::writeback::enable,
        crate::api::writeback::status,
        crate::api::sync::apply_batch,
        crate::api::sync::report_run,
        crate::api::sync::errors,
        crate::api::sync::runs,
        crate::api::sync::get_settings,
        crate::api::sync::update_settings,
        crate::api::sync::allow_deletes,
        crate::api::users::list,
        crate::api::users::get,
        crate::api::users::create,
        crate::api::users::update,
        crate::api::users::delete,
        crate::api::users::reset_password,
        crate::api::users::unlock,
        crate::api::users::revoke_tokens,
        crate::api::licenses::skus,
        crate::api::licenses::summary,
        crate::api::licenses::start_trial,
        crate::api::licenses::purchase,
        crate::api::licenses::errors,
        crate::api::licenses::user_licenses,
        crate::api::licenses::assign,
        crate::api::licenses::unassign,
        crate::api::licenses::entitlement,
        crate::api::licenses::group_licenses,
        crate::api::licenses::assign_group,
        crate::api::licenses::unassign_group,
        crate::api::audit::list,
        crate::api::tenant::get,
        crate::api::tenant::update,
        crate::api::tenant::add_domain,
        crate::api::tenant::list_domains,
        crate::api::tenant::verify_domain,
        crate::api::groups::list,
        crate::api::groups::get,
        crate::api::groups::create,
        crate::api::groups::update,
        crate::api::groups::delete,
        crate::api::groups::members,
        crate::api::groups::add_member,
        crate::api::groups::remove_member,
        crate::api::agents::create_token,
        crate::api::agents::register,
        crate::api::agents::list,
        crate::api::agents::revoke,
        crate::api::agents::heartbeat,
        crate::api::agents::config,
        crate::api::push::connect,
        crate::api::push::sync_run,
        crate::api::policy::get,
        crate::api::policy::put,
        crate::api::policy::questions,
        crate::metrics::handler,
        crate::healthz,
        serve,
    ),
    components(schemas(proto::ErrorBody))
)]
pub struct ApiDoc;

/// The document, built once per process from the handlers' declarations.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = <ApiDoc as utoipa::OpenApi>::openapi();
        Conventions::apply(&mut doc);
        let mut doc = serde_json::to_value(&doc).unwrap_or_default();
        integer_bounds(&mut doc);
        doc
    })
}

/// Every documented (method, path).
pub fn all_operations() -> Vec<(String, String)> {
    let mut ops = Vec::new();
    if let Some(paths) = document()["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
                ops.push((method.clone(), path.clone()));
            }
        }
    }
    ops
}

/// `GET /openapi.json`
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub async fn serve() -> Json<Value> {
    Json(document().clone())
}

/// Operations that take no bearer token: sign-in, agent registration (the registration token
/// is the credential), the anonymous reset flow and the service endpoints.
fn anonymous(method: &str, path: &str) -> bool {
    (path == "/api/v1/auth/token" && method == "post")
        || path == "/api/v1/agents/register"
        || path.starts_with("/api/v1/sspr/")
        || !path.starts_with("/api/")
}

/// The reset session's operations: the session secret in [`crate::api::sspr::SESSION_HEADER`].
fn reset_session(path: &str) -> bool {
    path.starts_with("/api/v1/sspr/")
        && path != "/api/v1/sspr/start"
        && path != "/api/v1/sspr/change"
}

/// What every operation shares, added to the generated document in one place.
pub struct Conventions;

/// Request enums (`#[serde(tag = …, deny_unknown_fields)]`) by schema name.
const CLOSED_ENUMS: &[&str] = &["SsprVerify", "Verification"];

/// (status, when) of the errors any operation of a kind can answer.
const COMMON_ERRORS: &[(&str, &str)] = &[
    ("404", "No such object (or no such endpoint)"),
    ("405", "The path exists but not with this method"),
    ("429", "Too many requests from the caller's network address (`[limits]`); the Retry-After header says when to come back"),
    ("500", "Internal error; nothing was changed by the failed step. Quote the tracking id to the operator"),
];
const BODY_ERRORS: &[(&str, &str)] = &[
    ("400", "The request is not valid: a body that is not JSON or not of the documented shape (`invalidRequestBody`), or a value a rule refuses (`validationFailed`); the message names the field"),
    ("413", "The request body is larger than `max_body_bytes`"),
];
const AUTH_ERRORS: &[(&str, &str)] = &[
    (
        "401",
        "No valid credential: a missing, expired or revoked bearer token, or a bad agent signature",
    ),
    ("403", "The caller's roles do not allow this operation"),
];

impl Conventions {
    fn apply(doc: &mut OpenApi) {
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        let components = doc
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "agentSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                proto::sync::HEADER_SIGNATURE,
                "Ed25519 signature (base64) over proto::sync::signing_input, with x-dirbridge-agent, x-dirbridge-timestamp and x-dirbridge-nonce",
            ))),
        );
        components.add_security_scheme(
            "ssprSession",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::api::sspr::SESSION_HEADER,
                "The reset session's secret: the sessionId POST /api/v1/sspr/start answered (never part of a URL)",
            ))),
        );
        // Tagged enums whose serde denies unknown fields: each variant is closed too (utoipa
        // closes structs only).
        for name in CLOSED_ENUMS {
            if let Some(RefOr::T(Schema::OneOf(one))) = components.schemas.get_mut(*name) {
                for variant in one.items.iter_mut() {
                    if let RefOr::T(Schema::Object(o)) = variant {
                        o.additional_properties =
                            Some(Box::new(AdditionalProperties::FreeForm(false)));
                    }
                }
            }
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops: [(&str, &mut Option<Operation>); 5] = [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("patch", &mut item.patch),
                ("delete", &mut item.delete),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    Self::operation(method, path, op);
                }
            }
        }
    }

    fn operation(method: &str, path: &str, op: &mut Operation) {
        // An optional body (`request_body(content = Option<T>)`) is "no body, or a T": never
        // the JSON `null` utoipa would allow.
        if let Some(body) = op.request_body.as_mut() {
            if body.required != Some(Required::True) {
                body.required = Some(Required::False);
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema {
                        let not_null: Vec<_> = one
                            .items
                            .iter()
                            .filter(|s| !matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == utoipa::openapi::schema::SchemaType::Type(utoipa::openapi::Type::Null)))
                            .cloned()
                            .collect();
                        if let [only] = not_null.as_slice() {
                            content.schema = Some(only.clone());
                        }
                    }
                }
            }
        }
        let params = op.parameters.get_or_insert_with(Vec::new);
        for name in path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        {
            if !params.iter().any(|p| p.name == name) {
                params.push(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::Type::String)
                                .min_length(Some(1)),
                        ))
                        .build(),
                );
            }
        }
        if params.is_empty() {
            op.parameters = None;
        }
        let secured = !anonymous(method, path);
        if path.starts_with("/api/v1/agent/") {
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(
                "agentSignature",
                [],
            )]);
        } else if secured {
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>("bearer", [])]);
        } else if reset_session(path) {
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(
                "ssprSession",
                [],
            )]);
        }
        let api = path.starts_with("/api/");
        let mut errors: Vec<(&str, &str)> = COMMON_ERRORS.to_vec();
        if api {
            // Any API operation may get a body or a query string it cannot read.
            errors.extend_from_slice(BODY_ERRORS);
        }
        if secured && api {
            errors.extend_from_slice(AUTH_ERRORS);
        }
        if reset_session(path) {
            errors.push((
                "401",
                "No reset session in the X-Dirbridge-Sspr-Session header, or it ended",
            ));
        }
        for (status, why) in errors {
            if !op.responses.responses.contains_key(status) {
                op.responses
                    .responses
                    .insert(status.to_string(), error_response(why));
            }
        }
        // Each error answer an operation documents itself is the JSON error document too.
        for (status, resp) in op.responses.responses.iter_mut() {
            if status.starts_with('2') || status == "101" {
                continue;
            }
            if let RefOr::T(r) = resp {
                if r.content.is_empty() {
                    *resp = error_response(&r.description);
                }
            }
        }
        op.responses
            .responses
            .entry("default".into())
            .or_insert_with(|| error_response("Any other error"));
    }
}

/// Every integer schema states the range its Rust type accepts (`format` `uint8`, `int32`…),
/// where the code gives no tighter one: a value past it is refused by the server, so the
/// document says so.
fn integer_bounds(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let range = match map.get("format").and_then(Value::as_str) {
                Some("int8") => Some((i8::MIN as i64, i8::MAX as u64)),
                Some("uint8") => Some((0, u8::MAX as u64)),
                Some("int16") => Some((i16::MIN as i64, i16::MAX as u64)),
                Some("uint16") => Some((0, u16::MAX as u64)),
                Some("int32") => Some((i32::MIN as i64, i32::MAX as u64)),
                Some("uint32") => Some((0, u32::MAX as u64)),
                Some("int64") => Some((i64::MIN, i64::MAX as u64)),
                Some("uint64") => Some((0, u64::MAX)),
                _ => None,
            };
            if let Some((min, max)) = range {
                map.entry("minimum").or_insert(min.into());
                map.entry("maximum").or_insert(max.into());
            }
            map.values_mut().for_each(integer_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(integer_bounds),
        _ => {}
    }
}

/// A response whose body is the JSON error document.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    /// The (method, path) pairs the router declares: every `.route("…", get(…).post(…))` in the
    /// files that build the API router, with `/api/v1` before the nested ones.
    fn routed() -> Vec<(String, String)> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let files = [
            ("lib.rs", ""),
            ("api/sspr.rs", "/api/v1"),
            ("api/writeback.rs", "/api/v1"),
            ("oidc/apps.rs", "/api/v1"),
        ];
        // A file that adds routes and is not read here would hide its routes from the check:
        // only the portal's pages, the OIDC provider's endpoints and this test may.
        let mut pending = vec![src.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&path).unwrap();
                let exempt =
                    rel.starts_with("portal/") || rel == "oidc/provider.rs" || rel == "openapi.rs";
                assert!(
                    exempt || !text.contains(".route(") || files.iter().any(|(f, _)| *f == rel),
                    "{rel} adds routes: read it in this test"
                );
            }
        }
        let mut out = Vec::new();
        for (file, prefix) in files {
            let text = std::fs::read_to_string(src.join(file)).unwrap();
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let open = rest.find('"').unwrap();
                let close = open + 1 + rest[open + 1..].find('"').unwrap();
                let path = &rest[open + 1..close];
                // The handler expression: up to the parenthesis closing `.route(`.
                let mut depth = 1;
                let mut end = close;
                for (i, c) in rest[close..].char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        end = close + i;
                        break;
                    }
                }
                let handlers = &rest[close + 1..end];
                // `/api/v1` routes in lib.rs are those of the nested router (before `.nest`).
                let nested = file == "lib.rs"
                    && text[..text.len() - rest.len()]
                        .find(".nest(\"/api/v1\"")
                        .is_none();
                let full = if nested || !prefix.is_empty() {
                    format!("/api/v1{path}")
                } else {
                    path.to_string()
                };
                for method in ["get", "post", "put", "patch", "delete"] {
                    let word = |pre: &str| handlers.contains(&format!("{pre}{method}("));
                    if handlers
                        .trim_start_matches([',', ' ', '\n'])
                        .starts_with(&format!("{method}("))
                        || word(".")
                        || word("routing::")
                    {
                        out.push((method.to_string(), full.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every route of the API router is in the document, and every documented operation is a
    /// route (that one is also checked over HTTP by the api tests).
    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let mut routed: Vec<_> = routed()
            .into_iter()
            // The portal's and the OIDC provider's pages are not part of the API.
            .filter(|(_, p)| {
                p.starts_with("/api/")
                    || ["/healthz", "/metrics", "/openapi.json"].contains(&p.as_str())
            })
            .map(|(m, p)| (m, normalise(&p)))
            .collect();
        let mut documented: Vec<_> = super::all_operations()
            .into_iter()
            .map(|(m, p)| (m, normalise(&p)))
            .collect();
        routed.sort();
        documented.sort();
        assert!(routed.len() > 80, "{routed:?}");
        let undocumented: Vec<_> = routed.iter().filter(|r| !documented.contains(r)).collect();
        let unrouted: Vec<_> = documented.iter().filter(|d| !routed.contains(d)).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed but not documented: {undocumented:?}; documented but not routed: {unrouted:?}"
        );
        assert_eq!(routed, documented, "a (method, path) twice");
    }

    /// `/users/{user}` and `/users/{id}` are the same route.
    fn normalise(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }
}
