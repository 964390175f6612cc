//! What every console page shows around its content: the header with the account menu, the support
//! staff banner, the Permissions menu at the left, the flash message. Each page's template struct holds
//! a `Layout` and `templates/base.html` renders it.

use crate::access::AccountAccess;
use crate::users::Role;
use crate::web::session::{Flash, SignedIn};
use crate::web::state::AppState;
use crate::web::urls::AccountUrls;

/// The signed-in user as the header shows them.
#[derive(Debug, Clone)]
pub struct UserView {
    pub display_name: String,
    pub email: String,
    pub is_staff: bool,
}

impl UserView {
    pub fn of(user: &crate::users::User) -> Self {
        Self {
            display_name: user.display_name.clone(),
            email: user.email.clone(),
            is_staff: user.is_staff,
        }
    }
}

/// The account the page is about.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub via_staff: bool,
    pub urls: AccountUrls,
}

impl AccountView {
    pub fn can_manage(&self) -> bool {
        self.role == Role::Owner
    }

    pub fn role_label(&self) -> &'static str {
        match (self.via_staff, self.role) {
            (true, _) => "Support staff",
            (false, Role::Owner) => "Owner",
            (false, Role::Viewer) => "Viewer",
        }
    }
}

/// Which item of the left menu is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    ApiKeys,
    Audit,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub user: Option<UserView>,
    pub account: Option<AccountView>,
    pub csrf_token: String,
    pub flash: Option<Flash>,
    pub nav: Nav,
    pub css_url: String,
    pub js_url: String,
}

impl Layout {
    /// A page outside any session (sign-in, setup, errors).
    pub fn anonymous(
        state: &AppState,
        title: &str,
        csrf_token: &str,
        flash: Option<Flash>,
    ) -> Self {
        Self {
            title: title.to_owned(),
            user: None,
            account: None,
            csrf_token: csrf_token.to_owned(),
            flash,
            nav: Nav::None,
            css_url: state.assets.css.clone(),
            js_url: state.assets.js.clone(),
        }
    }

    /// An error page: rendered without the application state (it must render whatever failed), with
    /// the header of the signed-in user when a handler got as far as checking the session.
    pub fn error(title: &str, signed_in: Option<crate::web::middleware::SignedInHeader>) -> Self {
        let (user, csrf_token) =
            signed_in.map_or((None, String::new()), |s| (Some(s.user), s.csrf_token));
        let assets = crate::web::assets::AssetUrls::compute();
        Self {
            title: title.to_owned(),
            user,
            account: None,
            csrf_token,
            flash: None,
            nav: Nav::None,
            css_url: assets.css,
            js_url: assets.js,
        }
    }

    /// A page of a signed-in user not about one account (the account picker).
    pub fn signed_in(state: &AppState, who: &SignedIn, title: &str, flash: Option<Flash>) -> Self {
        Self {
            user: Some(UserView::of(&who.user)),
            ..Self::anonymous(state, title, &who.session.csrf_token, flash)
        }
    }

    /// A page of one account.
    pub fn account(
        state: &AppState,
        who: &SignedIn,
        access: &AccountAccess,
        title: &str,
        nav: Nav,
        flash: Option<Flash>,
    ) -> Self {
        Self {
            account: Some(AccountView {
                id: access.account.id.clone(),
                name: access.account.name.clone(),
                role: access.role,
                via_staff: access.via_staff,
                urls: AccountUrls::new(&access.account.id),
            }),
            nav,
            ..Self::signed_in(state, who, title, flash)
        }
    }

    /// Whether the left-menu item named `item` ("api-keys", "audit") is the current page.
    pub fn is_current(&self, item: &str) -> bool {
        matches!(
            (self.nav, item),
            (Nav::ApiKeys, "api-keys") | (Nav::Audit, "audit")
        )
    }
}
