//! `Browser`: one HTTP client with its own cookie jar, and `TestResponse`, a response read whole.

use std::cell::RefCell;
use std::collections::BTreeMap;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;

use super::hidden_field;

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    /// Every `Set-Cookie` header value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The value of the first hidden `csrf_token` field in the page.
    pub fn csrf_token(&self) -> String {
        hidden_field(&self.body, "csrf_token")
            .unwrap_or_else(|| panic!("no csrf_token in page:\n{}", self.body))
    }
}

/// One user agent with a cookie jar.
pub struct Browser {
    pub address: String,
    client: awc::Client,
    jar: RefCell<BTreeMap<String, String>>,
}

impl Browser {
    /// A browser pointed at any address (a proxy in front of the app, say).
    pub fn for_address(address: &str) -> Browser {
        Browser {
            address: address.to_owned(),
            client: awc::Client::builder()
                .disable_redirects()
                .timeout(std::time::Duration::from_secs(30))
                .finish(),
            jar: RefCell::new(BTreeMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn finish(
        &self,
        res: Result<awc::ClientResponse, awc::error::SendRequestError>,
    ) -> TestResponse {
        let mut res = match res {
            Ok(r) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let body = res
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .expect("response body");
        let headers = res.headers().clone();
        for value in headers.get_all("set-cookie") {
            let Ok(text) = value.to_str() else { continue };
            let Ok(cookie) = Cookie::parse(text.to_owned()) else {
                continue;
            };
            let removed = cookie
                .max_age()
                .is_some_and(|age| age.is_zero() || age.is_negative());
            if removed || cookie.value().is_empty() {
                self.jar.borrow_mut().remove(cookie.name());
            } else {
                self.jar
                    .borrow_mut()
                    .insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        TestResponse {
            status: res.status(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        let req = self
            .client
            .get(self.url(path))
            .insert_header(("cookie", self.cookie_header()));
        let res = req.send().await;
        self.finish(res).await
    }

    /// Follows redirects (GET) until a non-redirect answer, at most 5 hops.
    pub async fn get_following(&self, path: &str) -> TestResponse {
        let mut res = self.get(path).await;
        for _ in 0..5 {
            if !res.status.is_redirection() {
                break;
            }
            let next = res.location().to_owned();
            res = self.get(&next).await;
        }
        res
    }

    /// POSTs a form body given as name/value pairs (repeat a name for repeated fields).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let body = serde_html_form::to_string(fields).expect("encode form");
        self.post_raw(path, "application/x-www-form-urlencoded", body.into_bytes())
            .await
    }

    /// POSTs a form; `None` when the server could not be reached (it was killed, say).
    pub async fn post_form_result(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Option<TestResponse> {
        let body = serde_html_form::to_string(fields).expect("encode form");
        let mut res = self
            .client
            .post(self.url(path))
            .insert_header(("cookie", self.cookie_header()))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(body)
            .await
            .ok()?;
        let body = res.body().limit(16 * 1024 * 1024).await.ok()?;
        Some(TestResponse {
            status: res.status(),
            headers: res.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// POSTs any body with any content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> TestResponse {
        let req = self
            .client
            .post(self.url(path))
            .insert_header(("cookie", self.cookie_header()))
            .insert_header(("content-type", content_type));
        let res = req.send_body(body).await;
        self.finish(res).await
    }

    /// Sends a request with extra headers (for API calls).
    #[allow(dead_code)]
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> TestResponse {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, self.url(path))
            .insert_header(("cookie", self.cookie_header()));
        // Appended, so that a test can send a header twice.
        for (name, value) in headers {
            req = req.append_header((*name, *value));
        }
        let res = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        };
        self.finish(res).await
    }

    /// The cookie's current value in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.borrow().get(name).cloned()
    }

    /// Replaces the jar's value of a cookie (to replay an old session, say).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .borrow_mut()
            .insert(name.to_owned(), value.to_owned());
    }

    /// The CSRF token of the page at `path` (every console page has one, in the sign-out form).
    pub async fn csrf_token_of(&self, path: &str) -> String {
        self.get(path).await.csrf_token()
    }
}
