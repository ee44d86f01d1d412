//! The account and device routes' limits, and the operator's admin API (`--admin-token`,
//! `--admin-token-file`, `--admin-addresses`): issue #19.

use std::path::PathBuf;

use crate::proxies::TrustedProxies;

/// The limits of the account and device routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    /// Live sessions one user may have; 0 = no cap. Beyond: 403 `limit_reached`.
    pub max_sessions_per_user: usize,
    /// `GET /users?username=` per minute per client address; 0 = no limit. Beyond: 429.
    pub lookup_rate_per_minute: u32,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            max_sessions_per_user: 100,
            lookup_rate_per_minute: 60,
        }
    }
}

/// The operator's admin API: its bearer token, and the peers besides loopback it answers.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub token: String,
    pub addresses: TrustedProxies,
}

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

/// The admin API's configuration: a token from the flag or the file (not both), long enough.
pub(super) fn admin_config(
    token: Option<String>,
    file: Option<PathBuf>,
    addresses: Option<&str>,
) -> Result<Option<AdminConfig>, String> {
    let token = match (token.filter(|t| !t.is_empty()), file) {
        (Some(_), Some(_)) => {
            return Err("give --admin-token or --admin-token-file, not both".to_string())
        }
        (Some(token), None) => token,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|err| format!("--admin-token-file {}: {err}", path.display()))?
            .trim()
            .to_string(),
        (None, None) => {
            if addresses.is_some_and(|a| !a.trim().is_empty()) {
                return Err("--admin-addresses needs --admin-token or --admin-token-file".into());
            }
            return Ok(None);
        }
    };
    if token.len() < MIN_ADMIN_TOKEN_BYTES {
        return Err(format!(
            "the admin token must be at least {MIN_ADMIN_TOKEN_BYTES} characters"
        ));
    }
    let addresses = TrustedProxies::parse(addresses.unwrap_or(""))
        .map_err(|err| err.replace("--trusted-proxies", "--admin-addresses"))?;
    Ok(Some(AdminConfig { token, addresses }))
}
