//! `bms-keys demo`: an account with an owner, a viewer and a support staff user, to click through.
//! Run it again to get fresh passwords.

use crate::config::Settings;
use crate::ids;
use crate::onboarding::{self, NewMember};
use crate::startup;
use crate::users::{Role, User};

/// The demo account's name.
pub const ACCOUNT: &str = "Acme Demo";

pub fn run(settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    let pool = startup::open_database(settings)?;
    let mut conn = pool.get()?;
    let people = [
        ("owner@demo.example", "Olivia Owner", Role::Owner, false),
        ("viewer@demo.example", "Victor Viewer", Role::Viewer, false),
        ("support@demo.example", "Sam Support", Role::Viewer, true),
    ];
    println!("Demo account \"{ACCOUNT}\":");
    for (email, name, role, is_staff) in people {
        let password = ids::random_base62(16);
        let new = NewMember {
            email: email.to_owned(),
            display_name: name.to_owned(),
            password: password.clone(),
            account_name: ACCOUNT.to_owned(),
            role: Some(role),
            is_staff,
        };
        let added = onboarding::add_member(&mut conn, &new, "demo").map_err(|e| e.to_string())?;
        if !added.created_user {
            User::set_password(&mut conn, &added.user.id, &password).map_err(|e| e.to_string())?;
        }
        let what = if is_staff {
            "support staff"
        } else {
            role.as_str()
        };
        println!("  {email:<24} password {password}   ({what})");
    }
    println!(
        "Start the server with `bms-keys serve` and sign in at {}/login",
        settings.public_url
    );
    Ok(())
}
