//! `bms-keys demo`: an account with an owner, a viewer and a support staff user, API keys with access
//! codes, and a partner account that links one of them — to click through. Run it again to get fresh
//! passwords (keys and codes are created only once).

use crate::access::AccountAccess;
use crate::api_keys::{self, KeyInput};
use crate::config::Settings;
use crate::error::AppError;
use crate::ids::{self, AccountId, ApiKeyId};
use crate::keystore;
use crate::onboarding::{self, NewMember};
use crate::policies::Catalogue;
use crate::revocation::commit;
use crate::startup;
use crate::users::{Role, User};
use crate::{access_codes, db::DbConn};

/// The demo account's name.
pub const ACCOUNT: &str = "Acme Demo";
const PARTNER: &str = "Partner Agency";

pub fn run(settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    let pool = startup::open_database(settings)?;
    let mut conn = pool.get()?;
    Catalogue::load(settings.policy_catalogue.as_deref())?.sync(&mut conn)?;
    let keys = keystore::load(&mut conn, &settings.data_dir, &settings.key_material)?;
    let people = [
        (
            "owner@demo.example",
            "Olivia Owner",
            ACCOUNT,
            Role::Owner,
            false,
        ),
        (
            "viewer@demo.example",
            "Victor Viewer",
            ACCOUNT,
            Role::Viewer,
            false,
        ),
        (
            "support@demo.example",
            "Sam Support",
            "BMS Support",
            Role::Owner,
            true,
        ),
        (
            "partner@demo.example",
            "Pat Partner",
            PARTNER,
            Role::Owner,
            false,
        ),
    ];
    println!("Demo users (sign in at {}/login):", settings.public_url);
    for (email, name, account, role, is_staff) in people {
        let password = ids::random_base62(16);
        let new = NewMember {
            email: email.to_owned(),
            display_name: name.to_owned(),
            password: password.clone(),
            account_name: account.to_owned(),
            role: Some(role),
            is_staff,
        };
        let added = onboarding::add_member(&mut conn, &new, "demo").map_err(|e| e.to_string())?;
        if !added.created_user {
            User::set_password(&mut conn, &added.user.id, &password).map_err(|e| e.to_string())?;
        }
        let what = if is_staff {
            "support staff".to_owned()
        } else {
            format!("{} of {account}", role.as_str())
        };
        println!("  {email:<24} password {password}   ({what})");
    }
    if let Some((secret, manager, account_id)) =
        create_keys(&mut conn, &keys).map_err(|e| e.to_string())?
    {
        println!(
            "\nA demo access code (key \"Reporting dashboard\", policy metrics.read):\n  {secret}"
        );
        println!("Try it once the server runs:");
        println!(
            "  curl -H 'x-api-key: {secret}' {}/api/v1/accounts/{account_id}/metrics",
            settings.public_url
        );
        println!(
            "\nA management access code (key \"Automation\": {}), for the management API (/docs/api):\n  {manager}",
            AUTOMATION.join(", ")
        );
        println!(
            "  curl -H 'x-api-key: {manager}' {}/api/v1/accounts/{account_id}/api-keys",
            settings.public_url
        );
        println!("Account id: {account_id}");
    }
    Ok(())
}

/// The policies of the demo's management key.
const AUTOMATION: &[&str] = &[
    "api-keys.manage",
    "access-codes.reveal",
    "audit.read",
    "ads.write",
    "metrics.read",
    "drive-files.read",
];

/// Creates the demo keys once; returns a reporting code's secret, a management code's secret and their
/// account the first time.
fn create_keys(
    conn: &mut DbConn,
    keys: &crate::secrets::KeyMaterial,
) -> Result<Option<(String, String, String)>, AppError> {
    let owner = User::find_by_email(conn, "owner@demo.example")?.ok_or(AppError::NotFound)?;
    let acme = crate::accounts::Account::find_by_name(conn, ACCOUNT)?.ok_or(AppError::NotFound)?;
    if api_keys::account_has_keys(conn, &acme.id)? {
        return Ok(None);
    }
    let access = AccountAccess::load(conn, &owner, &stored_id::<AccountId>(&acme.id)?)?;
    let actor = access.actor(&owner, "demo");
    let key = |name: &str, tags: &str, policies: &[&str]| KeyInput {
        name: name.to_owned(),
        tags: tags.to_owned(),
        policies: policies.iter().map(|p| (*p).to_owned()).collect(),
        linked_key_id: String::new(),
        ..KeyInput::default()
    };
    // Through the write path's transaction, so that servers already running on the same PostgreSQL
    // database hear of the new codes.
    let zapier = commit(conn, |conn| {
        let input = key(
            "Zapier — ads from Drive",
            "zapier, prod",
            &["ads.write", "drive-files.read"],
        );
        api_keys::create(conn, &access, &actor, &input)
    })?
    .value;
    let zapier_code = |conn: &mut DbConn| {
        let key = stored_id::<ApiKeyId>(&zapier.id)?;
        access_codes::create(conn, &access, &actor, keys, &key, "Zapier production")
    };
    let _ = commit(conn, zapier_code)?;
    let reporting = commit(conn, |conn| {
        let input = key("Reporting dashboard", "reporting", &["metrics.read"]);
        api_keys::create(conn, &access, &actor, &input)
    })?
    .value;
    let (_, secret) = commit(conn, |conn| {
        let key = stored_id::<ApiKeyId>(&reporting.id)?;
        access_codes::create(conn, &access, &actor, keys, &key, "Grafana")
    })?
    .value;
    let _ = commit(conn, |conn| {
        api_keys::create(conn, &access, &actor, &key("Not used yet", "", &[]))
    })?;
    let automation = commit(conn, |conn| {
        api_keys::create(
            conn,
            &access,
            &actor,
            &key("Automation", "scripts", AUTOMATION),
        )
    })?
    .value;
    let (_, manager) = commit(conn, |conn| {
        let key = stored_id::<ApiKeyId>(&automation.id)?;
        access_codes::create(conn, &access, &actor, keys, &key, "CI scripts")
    })?
    .value;

    let partner = User::find_by_email(conn, "partner@demo.example")?.ok_or(AppError::NotFound)?;
    let agency =
        crate::accounts::Account::find_by_name(conn, PARTNER)?.ok_or(AppError::NotFound)?;
    let partner_access = AccountAccess::load(conn, &partner, &stored_id::<AccountId>(&agency.id)?)?;
    let partner_actor = partner_access.actor(&partner, "demo");
    let link = KeyInput {
        linked_key_id: reporting.id.clone(),
        ..key("Acme's reporting key", "acme", &["metrics.read"])
    };
    let _ = commit(conn, |conn| {
        api_keys::link(conn, &partner_access, &partner_actor, &link)
    })?;
    Ok(Some((secret, manager, acme.id)))
}

/// An id read back from the database (always well-formed: we made it).
fn stored_id<T: TryFrom<String, Error = ids::MalformedId>>(id: &str) -> Result<T, AppError> {
    T::try_from(id.to_owned()).map_err(AppError::internal)
}
