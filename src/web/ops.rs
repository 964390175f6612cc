//! Endpoints for operators and load balancers.

use actix_web::HttpResponse;
use diesel::RunQueryDsl;

use crate::error::AppError;
use crate::web::state::State;

/// `GET /healthz` — the process is up and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz` — the database answers; 503 otherwise, so a load balancer stops sending traffic.
pub async fn readyz(state: State) -> Result<HttpResponse, AppError> {
    let ready = state
        .db
        .run(|conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await;
    Ok(match ready {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "unavailable", "reason": "database unreachable" })),
    })
}

/// `GET /metrics` — Prometheus text: verification outcomes, latency, cache, pool.
pub async fn prometheus(state: State) -> HttpResponse {
    let pool = state.db.pool.state();
    let mut body = state.verifier.metrics.render(
        state.verifier.cache.len(),
        (
            pool.connections,
            pool.idle_connections,
            state.db.pool.max_size(),
        ),
    );
    if let Some(store) = &state.shared {
        body.push_str(&crate::metrics::render_shared_store(
            store.is_up(),
            store.fallbacks(),
        ));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
