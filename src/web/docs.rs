//! `/docs/apis`: the complete list of BMS APIs and the policies that grant each — the documentation the
//! user guide points integrators to.

use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::error::AppError;
use crate::web::layout::Layout;
use crate::web::render::html;
use crate::web::session::{Flash, SignedIn};
use crate::web::state::State;

pub struct ApiView {
    pub method: String,
    pub path: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<String>,
}

pub struct PolicyView {
    pub name: String,
    pub description: String,
    pub rules: Vec<String>,
}

#[derive(Template)]
#[template(path = "docs/apis.html")]
struct ApisPage {
    layout: Layout,
    apis: Vec<ApiView>,
    policies: Vec<PolicyView>,
}

/// `GET /docs/apis` — public; signed-in users see their usual header.
pub async fn list_apis(
    req: HttpRequest,
    state: State,
    who: Option<SignedIn>,
) -> Result<HttpResponse, AppError> {
    let catalogue = &state.catalogue;
    let apis = catalogue
        .apis
        .iter()
        .map(|api| ApiView {
            method: api.method.clone(),
            path: api.path.clone(),
            name: api.name.clone(),
            description: api.description.clone(),
            policies: catalogue.policies_granting(&api.method, &api.path),
        })
        .collect();
    let policies = catalogue
        .policy_entries()
        .map(|(name, description, rules)| PolicyView {
            name: name.to_owned(),
            description: description.to_owned(),
            rules: rules.to_vec(),
        })
        .collect();
    let flash = Flash::take(&req);
    let layout = match &who {
        Some(who) => Layout::signed_in(&state, who, "BMS APIs", flash),
        None => Layout::anonymous(&state, "BMS APIs", "", flash),
    };
    html(&ApisPage {
        layout,
        apis,
        policies,
    })
}
