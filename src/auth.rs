//! Identity: the JWT secret (configured, or generated once and kept in the data dir), issuing and
//! verifying HS256 tokens, and reading the `Authorization: Bearer` header.

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

    pub fn issue(&self, user_id: Uuid, now_secs: u64) -> String {
        let claims = Claims {
            user_id,
            exp: now_secs + TOKEN_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The user a token names, if it is ours, HS256 and not expired.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims.user_id)
    }

    /// Authenticates a request from its `Authorization` header (`Bearer`, any case).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Uuid, ApiError> {
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
        let token = jwt.issue(user, now);
        assert_eq!(jwt.verify(&token), Some(user));
        assert_eq!(jwt.authenticate(Some(&format!("bearer {token}"))), Ok(user));
        assert_eq!(jwt.authenticate(Some(&format!("BEARER {token}"))), Ok(user));
    }

    #[test]
    fn rejects_expired_foreign_and_malformed_tokens() {
        let jwt = Jwt::new(SECRET);
        let user = Uuid::new_v4();
        let expired = jwt.issue(user, 1_000_000);
        assert_eq!(jwt.verify(&expired), None);
        let other = Jwt::new(b"another secret of at least 32 bytes!!");
        let now = crate::clock::wall_ms() / 1000;
        assert_eq!(jwt.verify(&other.issue(user, now)), None);
        assert_eq!(jwt.authenticate(Some("Basic abc")).unwrap_err().status, 401);
        assert_eq!(jwt.authenticate(None).unwrap_err().status, 401);
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
