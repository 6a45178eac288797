//! Named secrets for scripts: values are write-only through the API, stored encrypted
//! (ChaCha20-Poly1305, key from `RUNFLEET_SECRETS__KEYS`), mapped by a task into its
//! runs' environment, and redacted from everything a run records.

use std::collections::HashMap;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{ConfigError, SecretsConfig};
use crate::db::DbPool;
use crate::error::Error;

/// The encryption keys: the first encrypts, every one decrypts (for rotation).
pub struct Keyring {
    current: String,
    keys: HashMap<String, ChaCha20Poly1305>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring(current: {}, {} keys)",
            self.current,
            self.keys.len()
        )
    }
}

impl Keyring {
    /// The keyring `config` describes; None when no key is configured.
    pub fn from_config(config: &SecretsConfig) -> Result<Option<Keyring>, ConfigError> {
        let bad = |why: &str| {
            ConfigError::invalid(
                "secrets.keys",
                format!(
                    "{why}: give `id:key` items, the key 64 hex digits (e.g. `k1:$(openssl rand -hex 32)`)"
                ),
            )
        };
        let mut current = None;
        let mut keys = HashMap::new();
        for item in &config.keys {
            let (id, hex_key) = item
                .expose()
                .split_once(':')
                .ok_or_else(|| bad("an item has no ':'"))?;
            let bytes = hex::decode(hex_key.trim()).map_err(|_| bad("a key is not hex"))?;
            if bytes.len() != 32 || id.is_empty() {
                return Err(bad("a key is not 32 bytes, or its id is empty"));
            }
            let cipher = ChaCha20Poly1305::new(Key::from_slice(&bytes));
            if keys.insert(id.to_string(), cipher).is_some() {
                return Err(bad(&format!("key id '{id}' appears twice")));
            }
            current.get_or_insert_with(|| id.to_string());
        }
        Ok(current.map(|current| Keyring { current, keys }))
    }

    fn encrypt(&self, plaintext: &str) -> (String, Vec<u8>, Vec<u8>) {
        // 96 random bits per value (from the OS RNG, via UUIDv4): never reused in practice.
        let nonce: [u8; 12] = uuid::Uuid::new_v4().as_bytes()[..12]
            .try_into()
            .expect("12 bytes");
        let cipher = &self.keys[&self.current];
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("encryption of a short value does not fail");
        (self.current.clone(), nonce.to_vec(), ciphertext)
    }

    fn decrypt(&self, key_id: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<String, String> {
        let cipher = self.keys.get(key_id).ok_or_else(|| {
            format!("it was encrypted with key '{key_id}', which is not in secrets.keys")
        })?;
        if nonce.len() != 12 {
            return Err("its stored nonce is damaged".into());
        }
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                format!("key '{key_id}' does not decrypt it (wrong key, or damaged data)")
            })?;
        String::from_utf8(plain).map_err(|_| "it is not UTF-8".into())
    }
}

/// A secret as the API lists it: never its value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretInfo {
    /// Name, e.g. `warehouse-password`.
    pub name: String,
    /// Id of the key that encrypts it.
    pub key_id: String,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When its value last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last set it.
    pub updated_by: String,
}

fn not_configured() -> Error {
    Error::Conflict {
        code: "secrets_not_configured",
        field: "value".into(),
        message: "secrets need an encryption key: set RUNFLEET_SECRETS__KEYS (e.g. k1:$(openssl rand -hex 32)) on the producer and the consumers".into(),
    }
}

/// Largest secret value (bytes).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

const INFO: &str = "name, key_id, created_at, updated_at, updated_by";

fn info(row: &tokio_postgres::Row) -> SecretInfo {
    SecretInfo {
        name: row.get(0),
        key_id: row.get(1),
        created_at: row.get(2),
        updated_at: row.get(3),
        updated_by: row.get(4),
    }
}

/// Stores (or replaces) secret `name`.
pub async fn put(
    pool: &DbPool,
    keyring: Option<&Keyring>,
    name: &str,
    value: &str,
    by: &str,
) -> Result<SecretInfo, Error> {
    if !crate::names::is_valid_task_name(name) {
        return Err(Error::invalid(
            "invalid_name",
            "name",
            "a secret name is 1-128 of A-Z a-z 0-9 _ . - (starting with a letter or digit)",
        ));
    }
    if value.is_empty() || value.len() > MAX_VALUE_BYTES || value.contains('\0') {
        return Err(Error::invalid(
            "invalid_value",
            "value",
            format!("a secret value is 1 to {MAX_VALUE_BYTES} bytes, without NUL"),
        ));
    }
    let keyring = keyring.ok_or_else(not_configured)?;
    let (key_id, nonce, ciphertext) = keyring.encrypt(value);
    let client = pool.get().await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO secrets (name, key_id, nonce, ciphertext, updated_by)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET key_id = $2, nonce = $3, ciphertext = $4,
                        updated_by = $5, updated_at = now()
                 RETURNING {INFO}"
            ),
            &[&name, &key_id, &nonce, &ciphertext, &by],
        )
        .await?;
    Ok(info(&row))
}

/// Every secret, by name (no values).
pub async fn list(pool: &DbPool) -> Result<Vec<SecretInfo>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query(&format!("SELECT {INFO} FROM secrets ORDER BY name"), &[])
        .await?;
    Ok(rows.iter().map(info).collect())
}

/// Deletes secret `name`.
pub async fn delete(pool: &DbPool, name: &str) -> Result<(), Error> {
    let client = pool.get().await?;
    let n = client
        .execute("DELETE FROM secrets WHERE name = $1", &[&name])
        .await?;
    if n == 0 {
        return Err(Error::NotFound {
            code: "secret_not_found",
            message: format!("no secret named '{name}'"),
        });
    }
    Ok(())
}

/// Checks a task's `secrets` mapping (env name → secret name): valid names, secrets that
/// exist. `field` names the mapping in errors.
pub async fn check_mapping(
    client: &impl deadpool_postgres::GenericClient,
    mapping: &Map<String, Value>,
    field: &str,
) -> Result<(), Error> {
    for (env, secret) in mapping {
        let at = format!("{field}.{env}");
        if !crate::names::is_valid_env_name(env) {
            return Err(Error::invalid(
                "invalid_env",
                at,
                format!(
                    "'{env}' is not an environment variable name a task may set (letters, digits, _; not RUNFLEET_*)"
                ),
            ));
        }
        let Some(secret) = secret.as_str() else {
            return Err(Error::invalid(
                "invalid_secrets",
                at,
                "give the name of a secret (a string)",
            ));
        };
        let exists = client
            .query_opt("SELECT 1 FROM secrets WHERE name = $1", &[&secret])
            .await?
            .is_some();
        if !exists {
            return Err(Error::invalid(
                "unknown_secret",
                at,
                format!("no secret named '{secret}'; store it first with POST /secrets"),
            ));
        }
    }
    Ok(())
}

/// A secret handed to a run: the environment variable, the secret's name, its value.
#[derive(Clone)]
pub struct SecretEnv {
    /// Environment variable name.
    pub env: String,
    /// Secret name.
    pub name: String,
    /// Plain value.
    pub value: String,
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretEnv({} <- {})", self.env, self.name)
    }
}

/// The values for a run's `mapping` (env name → secret name). `Err` says why the run
/// cannot have them (the run fails with it, without starting).
pub async fn reveal(
    client: &impl deadpool_postgres::GenericClient,
    keyring: Option<&Keyring>,
    mapping: &Map<String, Value>,
) -> Result<Vec<SecretEnv>, RevealError> {
    if mapping.is_empty() {
        return Ok(Vec::new());
    }
    let keyring = keyring.ok_or_else(|| {
        RevealError::Unavailable(
            "the run needs secrets and this consumer has no key: set RUNFLEET_SECRETS__KEYS".into(),
        )
    })?;
    let mut out = Vec::with_capacity(mapping.len());
    for (env, name) in mapping {
        let name = name.as_str().unwrap_or_default();
        let row = client
            .query_opt(
                "SELECT key_id, nonce, ciphertext FROM secrets WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(|e| RevealError::Db(crate::db::DbError::Query(e)))?
            .ok_or_else(|| {
                RevealError::Unavailable(format!(
                    "secret '{name}' (for {env}) does not exist any more; store it again with POST /secrets"
                ))
            })?;
        let key_id: String = row.get(0);
        let nonce: Vec<u8> = row.get(1);
        let ciphertext: Vec<u8> = row.get(2);
        let value = keyring
            .decrypt(&key_id, &nonce, &ciphertext)
            .map_err(|why| {
                RevealError::Unavailable(format!("secret '{name}' cannot be read: {why}"))
            })?;
        out.push(SecretEnv {
            env: env.clone(),
            name: name.to_string(),
            value,
        });
    }
    Ok(out)
}

/// Why a run's secrets could not be revealed.
#[derive(Debug, thiserror::Error)]
pub enum RevealError {
    /// Postgres failed: try again.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The run cannot have them (missing secret, no key): it fails.
    #[error("{0}")]
    Unavailable(String),
}

/// Re-encrypts every secret with the current key (after a rotation); returns how many.
pub async fn reencrypt_all(pool: &DbPool, keyring: &Keyring) -> Result<usize, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT name, key_id, nonce, ciphertext FROM secrets FOR UPDATE",
            &[],
        )
        .await?;
    for row in &rows {
        let name: String = row.get(0);
        let key_id: String = row.get(1);
        let nonce: Vec<u8> = row.get(2);
        let ciphertext: Vec<u8> = row.get(3);
        let value = keyring
            .decrypt(&key_id, &nonce, &ciphertext)
            .map_err(|why| {
                Error::invalid(
                    "undecryptable_secret",
                    "secrets.keys",
                    format!("secret '{name}': {why}"),
                )
            })?;
        let (key_id, nonce, ciphertext) = keyring.encrypt(&value);
        tx.execute(
            "UPDATE secrets SET key_id = $2, nonce = $3, ciphertext = $4 WHERE name = $1",
            &[&name, &key_id, &nonce, &ciphertext],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// `text` with every secret value replaced by `[redacted:<name>]`.
pub fn redact(text: &str, secrets: &[SecretEnv]) -> String {
    let mut out = text.to_string();
    // Longest first, so a value containing another is replaced whole.
    let mut sorted: Vec<&SecretEnv> = secrets.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
    for s in sorted {
        if !s.value.is_empty() && out.contains(&s.value) {
            out = out.replace(&s.value, &format!("[redacted:{}]", s.name));
        }
    }
    out
}

/// `value` with every string in it redacted (see [`redact`]).
pub fn redact_json(value: &Value, secrets: &[SecretEnv]) -> Value {
    match value {
        Value::String(s) => Value::String(redact(s, secrets)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| redact_json(v, secrets)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (redact(k, secrets), redact_json(v, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn keyring(items: &[&str]) -> Keyring {
        Keyring::from_config(&SecretsConfig {
            keys: items.iter().map(|s| Secret::from(*s)).collect(),
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn values_round_trip_and_old_keys_still_decrypt_after_rotation() {
        let k1 = format!("k1:{}", "11".repeat(32));
        let k2 = format!("k2:{}", "22".repeat(32));
        let old = keyring(&[&k1]);
        let (id, nonce, ct) = old.encrypt("hunter2");
        assert_eq!(id, "k1");
        assert!(!ct.windows(7).any(|w| w == b"hunter2"));
        let rotated = keyring(&[&k2, &k1]);
        assert_eq!(rotated.decrypt(&id, &nonce, &ct).unwrap(), "hunter2");
        assert_eq!(rotated.encrypt("x").0, "k2");
        let wrong = keyring(&[&format!("k1:{}", "33".repeat(32))]);
        assert!(wrong.decrypt(&id, &nonce, &ct).is_err());
        assert!(
            keyring(&[&k2])
                .decrypt(&id, &nonce, &ct)
                .unwrap_err()
                .contains("'k1'")
        );
    }

    #[test]
    fn bad_keys_are_refused_and_no_key_means_no_keyring() {
        for bad in [
            "nocolon",
            "k:zz",
            "k:abcd",
            &format!(":{}", "11".repeat(32)),
        ] {
            let r = Keyring::from_config(&SecretsConfig {
                keys: vec![Secret::from(bad)],
            });
            assert!(r.is_err(), "{bad}");
        }
        assert!(
            Keyring::from_config(&SecretsConfig::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn redaction_replaces_every_occurrence_longest_first() {
        let secrets = vec![
            SecretEnv {
                env: "A".into(),
                name: "short".into(),
                value: "pass".into(),
            },
            SecretEnv {
                env: "B".into(),
                name: "long".into(),
                value: "password123".into(),
            },
        ];
        assert_eq!(
            redact("pass password123 pass", &secrets),
            "[redacted:short] [redacted:long] [redacted:short]"
        );
        let v = serde_json::json!({"k": ["password123", 1], "pass": true});
        assert_eq!(
            redact_json(&v, &secrets),
            serde_json::json!({"k": ["[redacted:long]", 1], "[redacted:short]": true})
        );
    }
}
