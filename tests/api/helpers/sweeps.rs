//! Walking the route table: the ids put into path parameters, and a route's path with them filled in.

/// The ids put into a route's path parameters.
pub struct Ids<'a> {
    pub acc: &'a str,
    pub key: &'a str,
    pub code: &'a str,
    /// A webhook endpoint (`hook_…`).
    pub hook: &'a str,
}

/// A route of the route table (`web::CONSOLE_ROUTES`…) with its path parameters filled in, for the
/// sweeps that walk the table. A parameter not known here fails the test until it is taught.
pub fn route_path(route: &bms_keys::web::RouteSpec, ids: &Ids<'_>) -> String {
    let path = route
        .path
        .replace("{acc}", ids.acc)
        .replace("{key}", ids.key)
        .replace("{code}", ids.code)
        // No route needs a real link here: a key id in its place is refused like any other id.
        .replace("{link}", ids.key)
        .replace("{hook}", ids.hook)
        // No route needs a real message either: a well-formed unknown one is refused like any other.
        .replace("{msg}", "msg_0000000000000000")
        .replace("{hash}", "0000")
        .replace("{file:.*}", "app.css");
    assert!(
        !path.contains('{'),
        "{} {} has a path parameter the sweeps do not know: teach `helpers::route_path` what to put there",
        route.method,
        route.path
    );
    path
}
