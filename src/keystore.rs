//! Where the key material comes from, and the check that it is the right one.
//!
//! In order: `BMS_MASTER_KEY` and `BMS_PEPPER` (base64, 32 bytes each) from the environment; else the
//! key file `<data dir>/key-material.toml`; else, only while no key material was ever used with this
//! database, a new pair generated into that file with mode 0600. The database keeps a fingerprint of
//! the material in use: a server started with other material (or without its key file, once codes
//! exist) refuses to start with a message saying what to restore, instead of failing every request.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use diesel::prelude::*;
use serde::Deserialize;

use crate::db::DbConn;
use crate::schema::{access_codes, server_settings};
use crate::secrets::KeyMaterial;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "key-material.toml";
const FINGERPRINT: &str = "key_material_fingerprint";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the key material is missing: this database already has access codes (or was used with key \
         material before), but neither BMS_MASTER_KEY/BMS_PEPPER nor the key file {0} is there. \
         Restore the key file from your backup; without it no access code can be verified or revealed"
    )]
    Missing(String),
    #[error(
        "the key material does not match this database: it was set up with other key material, so no \
         access code could be verified or revealed. Use the key file (or BMS_MASTER_KEY/BMS_PEPPER) \
         that belongs to this database"
    )]
    Mismatch,
    #[error("cannot write the key file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read or record the key material fingerprint: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Key material given in the environment, as base64 text.
#[derive(Debug, Clone, Default)]
pub struct KeyMaterialSource {
    pub master_key: Option<String>,
    pub pepper: Option<String>,
}

impl KeyMaterialSource {
    pub fn from_env() -> Self {
        Self {
            master_key: std::env::var("BMS_MASTER_KEY")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            pepper: std::env::var("BMS_PEPPER")
                .ok()
                .filter(|v| !v.trim().is_empty()),
        }
    }
}

#[derive(Deserialize)]
struct KeyFile {
    master_key: String,
    pepper: String,
}

fn decode(name: &str, text: &str) -> Result<[u8; 32], KeyError> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            KeyError::Invalid(format!("{name} must be 32 bytes in base64 (44 characters)"))
        })
}

pub fn key_file_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

fn read_key_file(path: &Path) -> Result<Option<KeyMaterial>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let file: KeyFile = toml::from_str(&text).map_err(|e| {
        KeyError::Invalid(format!("the key file {} is not valid: {e}", path.display()))
    })?;
    Ok(Some(KeyMaterial::new(
        decode("master_key", &file.master_key)?,
        decode("pepper", &file.pepper)?,
    )))
}

fn write_key_file(path: &Path, keys: &KeyMaterial) -> Result<(), KeyError> {
    use std::io::Write;
    let error = |source| KeyError::Write {
        path: path.display().to_string(),
        source,
    };
    let text = format!(
        "# bms-keys key material. Back this file up together with the database: without it, access\n\
         # codes can be neither verified nor revealed. Keep it secret (mode 0600).\n\
         master_key = \"{}\"\npepper = \"{}\"\n",
        STANDARD.encode(keys.master_key()),
        STANDARD.encode(keys.pepper())
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)
}

fn stored_fingerprint(conn: &mut DbConn) -> QueryResult<Option<Vec<u8>>> {
    server_settings::table
        .find(FINGERPRINT)
        .select(server_settings::value)
        .first(conn)
        .optional()
}

/// The key material to run with, after checking it against the database.
pub fn load(
    conn: &mut DbConn,
    data_dir: &Path,
    source: &KeyMaterialSource,
) -> Result<KeyMaterial, KeyError> {
    let path = key_file_path(data_dir);
    let given = match (&source.master_key, &source.pepper) {
        (Some(master), Some(pepper)) => Some(KeyMaterial::new(
            decode("BMS_MASTER_KEY", master)?,
            decode("BMS_PEPPER", pepper)?,
        )),
        (None, None) => read_key_file(&path)?,
        _ => {
            return Err(KeyError::Invalid(
                "set both BMS_MASTER_KEY and BMS_PEPPER, or neither".to_owned(),
            ));
        }
    };
    let fingerprint = stored_fingerprint(conn)?;
    let keys = match given {
        Some(keys) => keys,
        None => {
            let codes: i64 = access_codes::table.count().get_result(conn)?;
            if fingerprint.is_some() || codes > 0 {
                return Err(KeyError::Missing(path.display().to_string()));
            }
            let keys = KeyMaterial::generate();
            write_key_file(&path, &keys)?;
            tracing::info!(path = %path.display(), "generated new key material; back this file up");
            keys
        }
    };
    match fingerprint {
        Some(stored) if stored.as_slice() == keys.fingerprint().as_slice() => {}
        Some(_) => return Err(KeyError::Mismatch),
        None => {
            diesel::insert_into(server_settings::table)
                .values((
                    server_settings::name.eq(FINGERPRINT),
                    server_settings::value.eq(keys.fingerprint().to_vec()),
                ))
                .execute(conn)?;
        }
    }
    Ok(keys)
}
