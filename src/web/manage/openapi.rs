//! The OpenAPI 3.1 document of the management API, built from the route table and the JSON types.
