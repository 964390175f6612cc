//! The console's entry pages: the home redirect and the account picker.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access;
use crate::accounts::Account;
use crate::error::AppError;
use crate::users::{Membership, Role};
use crate::web::layout::Layout;
use crate::web::render::html;
use crate::web::session::{Flash, SignedIn, see_other};
use crate::web::state::State;
use crate::web::urls::{self, AccountUrls};

/// `GET /` — the user's API Keys page (of their first account), or the account picker.
pub async fn home(state: State, who: SignedIn) -> Result<HttpResponse, AppError> {
    if who.user.is_staff {
        // Support staff work in customers' accounts: they start at the picker, not in their own.
        return Ok(see_other(urls::ACCOUNTS));
    }
    let user = who.user.clone();
    let account = state
        .db
        .run(move |conn| Ok(access::home_account(conn, &user)?))
        .await?;
    Ok(match account {
        Some(account) => see_other(&AccountUrls::new(&account.id).api_keys()),
        None => see_other(urls::ACCOUNTS),
    })
}

#[derive(Deserialize)]
pub struct PickQuery {
    #[serde(default)]
    q: String,
}

/// One row of the account picker.
pub struct AccountChoice {
    pub name: String,
    pub url: String,
    pub role: &'static str,
}

#[derive(Template)]
#[template(path = "accounts/pick.html")]
struct PickAccountPage {
    layout: Layout,
    memberships: Vec<AccountChoice>,
    /// Support staff also see (and can search) every account.
    all_accounts: Option<Vec<AccountChoice>>,
    q: String,
}

/// How many accounts the staff picker lists at once.
const PICKER_LIMIT: i64 = 200;

/// `GET /accounts` — the accounts the user can open; for support staff, every account.
pub async fn pick_account(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    query: web::Query<PickQuery>,
) -> Result<HttpResponse, AppError> {
    let user = who.user.clone();
    let q = query.q.trim().to_owned();
    let filter = q.clone();
    let (mine, all) = state
        .db
        .run(move |conn| {
            let mine = Membership::accounts_of(conn, &user.id)?;
            let all = if user.is_staff {
                Some(Account::search(conn, &filter, PICKER_LIMIT)?)
            } else {
                None
            };
            Ok((mine, all))
        })
        .await?;
    let choice = |account: &Account, role: &'static str| AccountChoice {
        name: account.name.clone(),
        url: AccountUrls::new(&account.id).api_keys(),
        role,
    };
    let memberships = mine
        .iter()
        .map(|(a, role)| {
            choice(
                a,
                if *role == Role::Owner {
                    "Owner"
                } else {
                    "Viewer"
                },
            )
        })
        .collect();
    let all_accounts = all.map(|accounts| {
        accounts
            .iter()
            .map(|a| choice(a, "Support staff"))
            .collect()
    });
    html(&PickAccountPage {
        layout: Layout::signed_in(&state, &who, "Accounts", Flash::take(&req)),
        memberships,
        all_accounts,
        q,
    })
}
