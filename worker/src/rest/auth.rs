//! The bearer-token check of the mutating endpoints: without a configured token they are
//! refused (the API is read-only by default); with one, the `Authorization: Bearer` header must
//! carry it, compared in constant time.

use axum::http::{HeaderMap, StatusCode, header};

use super::Problem;

/// `Ok` when the request may change the job; else the response refusing it.
pub fn check(headers: &HeaderMap, token: Option<&str>) -> Result<(), Problem> {
    let Some(token) = token else {
        return Err(super::problem(
            StatusCode::FORBIDDEN,
            "the REST API is read-only: start it with a token (--ui-token, WEIR_UI_TOKEN or the StreamJob's uiTokenSecret) to allow savepoints and stops",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if same(given.trim().as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(super::problem(
            StatusCode::FORBIDDEN,
            "the bearer token is not the right one",
        )),
        None => Err(super::problem(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs an Authorization: Bearer <token> header",
        )),
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn only_the_right_bearer_token_passes_and_none_is_configured_means_read_only() {
        assert!(check(&with(Some("Bearer s3cret")), Some("s3cret")).is_ok());
        let code = |h: HeaderMap, t: Option<&str>| check(&h, t).unwrap_err().code;
        assert_eq!(code(with(None), Some("s3cret")), StatusCode::UNAUTHORIZED);
        assert_eq!(code(with(Some("Bearer nope")), Some("s3cret")), StatusCode::FORBIDDEN);
        assert_eq!(code(with(Some("Bearer s3cre")), Some("s3cret")), StatusCode::FORBIDDEN);
        assert_eq!(
            code(with(Some("Basic s3cret")), Some("s3cret")),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(code(with(Some("Bearer s3cret")), None), StatusCode::FORBIDDEN);
        assert!(same(b"", b"") && !same(b"a", b"b") && !same(b"a", b"ab"));
    }
}
