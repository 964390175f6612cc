//! Table definitions shared by both backends. Written by hand to match `migrations/sqlite` and
//! `migrations/postgres` column for column; `tests/api/migrations.rs` checks that both agree.

diesel::table! {
    accounts (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        display_name -> Text,
        password_hash -> Text,
        is_staff -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    memberships (user_id, account_id) {
        user_id -> Text,
        account_id -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        client_ip -> Text,
        user_agent -> Text,
    }
}

diesel::table! {
    policies (name) {
        name -> Text,
        description -> Text,
        rules -> Text,
        position -> Integer,
        retired -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        account_id -> Text,
        name -> Text,
        kind -> Text,
        linked_key_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        link_removed_at -> Nullable<Timestamp>,
        rate_per_minute -> Nullable<Integer>,
        rate_per_day -> Nullable<Integer>,
    }
}

diesel::table! {
    revocation_log (seq) {
        seq -> BigInt,
        key_id -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    removed_links (source_key_id, account_id) {
        source_key_id -> Text,
        account_id -> Text,
        link_key_id -> Text,
        removed_at -> Timestamp,
    }
}

diesel::table! {
    api_key_tags (api_key_id, tag) {
        api_key_id -> Text,
        account_id -> Text,
        tag -> Text,
    }
}

diesel::table! {
    api_key_policies (api_key_id, policy_name) {
        api_key_id -> Text,
        policy_name -> Text,
    }
}

diesel::table! {
    access_codes (id) {
        id -> Text,
        api_key_id -> Text,
        slot -> Integer,
        description -> Text,
        enabled -> Bool,
        secret_digest -> Binary,
        sealed_secret -> Binary,
        secret_hint -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        exposed_at -> Nullable<Timestamp>,
        exposure_source -> Nullable<Text>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        account_id -> Nullable<Text>,
        actor_user_id -> Nullable<Text>,
        actor_email -> Text,
        actor_is_staff -> Bool,
        action -> Text,
        target -> Text,
        client_ip -> Text,
        details -> Text,
        occurred_at -> Timestamp,
    }
}

diesel::table! {
    usage_daily (api_key_id, day) {
        api_key_id -> Text,
        account_id -> Text,
        day -> Date,
        requests -> BigInt,
    }
}

diesel::table! {
    ads (id) {
        id -> Text,
        account_id -> Text,
        name -> Text,
        status -> Text,
        daily_budget_cents -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    drive_files (id) {
        id -> Text,
        account_id -> Text,
        name -> Text,
        mime_type -> Text,
        size_bytes -> BigInt,
        modified_at -> Timestamp,
    }
}

diesel::table! {
    server_settings (name) {
        name -> Text,
        value -> Binary,
    }
}

diesel::table! {
    idempotency_keys (account_id, access_code_id, idempotency_key) {
        account_id -> Text,
        access_code_id -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        status -> Integer,
        location -> Nullable<Text>,
        sealed_body -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    secret_scanning_alerts (body_sha256) {
        body_sha256 -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    code_retirements (code_id) {
        code_id -> Text,
        api_key_id -> Text,
        account_id -> Text,
        mode -> Text,
        quiet_seconds -> Nullable<Integer>,
        retire_at -> Nullable<Timestamp>,
        scheduled_at -> Timestamp,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        account_id -> Text,
        url -> Text,
        description -> Text,
        events -> Text,
        enabled -> Bool,
        sealed_secret -> Binary,
        previous_sealed_secret -> Nullable<Binary>,
        previous_secret_until -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        account_id -> Text,
        event_type -> Text,
        payload -> Text,
        created_at -> Timestamp,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_attempt_at -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    expiry_notices (code_id, notice) {
        code_id -> Text,
        notice -> Text,
        sent_at -> Timestamp,
    }
}

diesel::joinable!(memberships -> accounts (account_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_keys -> accounts (account_id));
diesel::joinable!(api_key_tags -> api_keys (api_key_id));
diesel::joinable!(api_key_policies -> api_keys (api_key_id));
diesel::joinable!(api_key_policies -> policies (policy_name));
diesel::joinable!(access_codes -> api_keys (api_key_id));
diesel::joinable!(usage_daily -> api_keys (api_key_id));
diesel::joinable!(removed_links -> accounts (account_id));
diesel::joinable!(webhook_endpoints -> accounts (account_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(expiry_notices -> access_codes (code_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    users,
    memberships,
    sessions,
    policies,
    api_keys,
    api_key_tags,
    api_key_policies,
    access_codes,
    audit_events,
    usage_daily,
    ads,
    drive_files,
    server_settings,
    removed_links,
    idempotency_keys,
    secret_scanning_alerts,
    code_retirements,
    webhook_endpoints,
    webhook_deliveries,
    expiry_notices,
);
