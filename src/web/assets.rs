//! The stylesheet and script, embedded in the binary and served under a content-hash path so browsers
//! may cache them forever: a new build changes the hash, hence the URL.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use rust_embed::Embed;

use crate::error::AppError;

#[derive(Embed)]
#[folder = "static/"]
struct Static;

/// The versioned URLs of the assets, computed once at start-up.
#[derive(Debug, Clone)]
pub struct AssetUrls {
    pub css: String,
    pub js: String,
}

/// The first 12 hex digits of the file's SHA-256.
fn short_hash(file: &str) -> String {
    Static::get(file)
        .map(|f| {
            f.metadata
                .sha256_hash()
                .iter()
                .take(6)
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .unwrap_or_else(|| "missing".to_owned())
}

impl AssetUrls {
    pub fn compute() -> Self {
        Self {
            css: format!("/static/{}/app.css", short_hash("app.css")),
            js: format!("/static/{}/app.js", short_hash("app.js")),
        }
    }
}

/// `GET /static/{hash}/{file}`. A stale hash still gets the current file, just not cached for long,
/// so a page rendered by an older instance during a rolling upgrade keeps working.
pub async fn serve_asset(path: web::Path<(String, String)>) -> Result<HttpResponse, AppError> {
    let (hash, file) = path.into_inner();
    let asset = Static::get(&file).ok_or(AppError::NotFound)?;
    let cache = if hash == short_hash(&file) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.metadata.mimetype()))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(asset.data.into_owned()))
}
