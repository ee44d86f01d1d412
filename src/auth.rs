//! Identity: the JWT secret (configured, or generated once and kept in the data dir), issuing and
//! verifying HS256 tokens, and reading the `Authorization: Bearer` header.
//!
//! A login token carries the user's token generation (`gen`) when it was issued and a random id
//! (`jti`): the REST side refuses a token whose generation is below the user's (a password
//! change or `POST /logout/all` raises it) or whose signature is in the store's revoked tokens
//! (`POST /logout`). Tokens issued before either claim existed have generation 0.

use std::fs;
use std::io::Write;
use std::path::Path;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ServerError};

/// How long a login token is valid.
pub const TOKEN_LIFETIME_SECS: u64 = 14 * 24 * 3600;

#[derive(Serialize, Deserialize)]
struct Claims {
    user_id: Uuid,
    exp: u64,
    #[serde(default)]
    gen: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// What a verified login token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub user_id: Uuid,
    /// Expiry, in seconds since the epoch.
    pub exp: u64,
    /// The user's token generation when it was issued.
    pub gen: u32,
    /// The token's signature: what names this one token in the revoked tokens (a token issued
    /// before `jti` existed has one too).
    pub signature: String,
}

pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Jwt {
    pub fn new(secret: &[u8]) -> Jwt {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        Jwt {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A login token for `user_id` of token generation `gen`.
    pub fn issue(&self, user_id: Uuid, gen: u32, now_secs: u64) -> String {
        let claims = Claims {
            user_id,
            exp: now_secs + TOKEN_LIFETIME_SECS,
            gen,
            // Two logins in the same second get distinct tokens, so logging one out keeps the
            // other.
            jti: Some(random_hex(16)),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// What a token says, if it is ours, HS256 and not expired.
    pub fn verify(&self, token: &str) -> Option<Token> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let signature = token.rsplit('.').next().unwrap_or_default().to_string();
        Some(Token {
            user_id: data.claims.user_id,
            exp: data.claims.exp,
            gen: data.claims.gen,
            signature,
        })
    }

    /// Authenticates a request from its `Authorization` header (`Bearer`, any case): the
    /// token's own checks; the store's (generation, revocation) are the caller's.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Token, ApiError> {
        let header =
            authorization.ok_or_else(|| ApiError::unauthorized("missing Authorization header"))?;
        let (scheme, token) = header
            .split_once(' ')
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized(
                "expected `Authorization: Bearer <token>`",
            ));
        }
        self.verify(token.trim())
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))
    }
}

/// The configured secret, or the one kept in `data_dir/jwt-secret`, created on first start.
pub fn load_or_create_secret(
    configured: Option<&[u8]>,
    data_dir: &Path,
) -> Result<Vec<u8>, ServerError> {
    if let Some(secret) = configured {
        return Ok(secret.to_vec());
    }
    let path = data_dir.join("jwt-secret");
    match fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= MIN_SECRET_BYTES => {
            return Ok(text.trim().as_bytes().to_vec())
        }
        Ok(_) => {
            return Err(ServerError::WeakSecret {
                path,
                min_bytes: MIN_SECRET_BYTES,
            })
        }
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
        Err(_) => {}
    }
    // Written aside and renamed into place, so a crash never leaves a short secret behind.
    let secret = random_hex(32);
    let staging = data_dir.join("jwt-secret.new");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staging)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    fs::rename(&staging, &path)?;
    fs::File::open(data_dir)?.sync_all()?;
    Ok(secret.into_bytes())
}

/// The shortest secret accepted, configured or kept in the data dir.
pub const MIN_SECRET_BYTES: usize = 32;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// `bytes` random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_and_name_the_user() {
        let jwt = Jwt::new(SECRET);
        let user = Uuid::new_v4();
        let now = crate::clock::wall_ms() / 1000;
        let token = jwt.issue(user, 3, now);
        let verified = jwt.verify(&token).unwrap();
        assert_eq!((verified.user_id, verified.gen), (user, 3));
        assert_eq!(verified.exp, now + TOKEN_LIFETIME_SECS);
        assert_eq!(Some(verified.signature.as_str()), token.rsplit('.').next());
        let bearer = |scheme: &str| jwt.authenticate(Some(&format!("{scheme} {token}")));
        assert_eq!(bearer("bearer").map(|t| t.user_id), Ok(user));
        assert_eq!(bearer("BEARER").map(|t| t.user_id), Ok(user));
        assert_ne!(jwt.issue(user, 3, now), token, "each token has its own id");
    }

    #[test]
    fn rejects_expired_foreign_and_malformed_tokens() {
        let jwt = Jwt::new(SECRET);
        let user = Uuid::new_v4();
        let expired = jwt.issue(user, 0, 1_000_000);
        assert_eq!(jwt.verify(&expired), None);
        let other = Jwt::new(b"another secret of at least 32 bytes!!");
        let now = crate::clock::wall_ms() / 1000;
        assert_eq!(jwt.verify(&other.issue(user, 0, now)), None);
        assert_eq!(jwt.authenticate(Some("Basic abc")).unwrap_err().status, 401);
        assert_eq!(jwt.authenticate(None).unwrap_err().status, 401);
    }

    #[test]
    fn tokens_issued_before_gen_and_jti_are_generation_0() {
        #[derive(Serialize)]
        struct Old {
            user_id: Uuid,
            exp: u64,
        }
        let jwt = Jwt::new(SECRET);
        let user = Uuid::new_v4();
        let exp = crate::clock::wall_ms() / 1000 + 60;
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Old { user_id: user, exp },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let verified = jwt.verify(&old).expect("an older token still verifies");
        assert_eq!(
            (verified.user_id, verified.gen, verified.exp),
            (user, 0, exp)
        );
        assert_eq!(Some(verified.signature.as_str()), old.rsplit('.').next());
    }

    #[test]
    fn generated_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(None, dir.path()).unwrap();
        let second = load_or_create_secret(None, dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(first, second);
    }

    #[test]
    fn a_short_kept_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("jwt-secret"), "").unwrap();
        let refused = load_or_create_secret(None, dir.path()).unwrap_err();
        assert!(
            matches!(refused, ServerError::WeakSecret { min_bytes: 32, .. }),
            "{refused}"
        );
    }
}
