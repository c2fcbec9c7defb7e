//! [`Refusal`]: why the domain said no, as a stable code plus a sentence an admin can act on.
//! Messages never contain secrets (passwords, answers, tokens).

use proto::ErrorCode;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
    /// Input that breaks a rule (`validationFailed`, 400).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }
    /// The incumbent's `Request_BadRequest` (400), kept for licence assignment failures.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    /// Signed in, but not allowed (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    /// No subscription, suspended subscriptions, or no seat left (`licenseUnavailable`, 400).
    pub fn license_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LicenseUnavailable, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_the_code_and_display_is_the_message() {
        let cases = [
            (Refusal::validation("v"), ErrorCode::Validation, 400),
            (Refusal::bad_request("b"), ErrorCode::BadRequest, 400),
            (Refusal::forbidden("f"), ErrorCode::Forbidden, 403),
            (Refusal::not_found("n"), ErrorCode::NotFound, 404),
            (Refusal::conflict("c"), ErrorCode::Conflict, 409),
            (
                Refusal::license_unavailable("l"),
                ErrorCode::LicenseUnavailable,
                400,
            ),
            (
                Refusal::unauthenticated("u"),
                ErrorCode::Unauthenticated,
                401,
            ),
        ];
        for (r, code, status) in cases {
            assert_eq!(r.code, code);
            assert_eq!(r.http_status(), status);
            assert_eq!(r.to_string(), r.message);
        }
    }

    #[test]
    fn bad_request_serialises_as_the_incumbent_code() {
        let r = Refusal::bad_request("x");
        assert_eq!(
            serde_json::to_string(&r.code).unwrap(),
            "\"Request_BadRequest\""
        );
    }
}
