//! Centercode's External Feedback API (`reference/centercode-api.txt`):
//! what a create answer holds, which attachment goes to which file
//! element, and which URLs may carry the API key.

#[cfg(feature = "sandbox")]
pub(crate) mod sandbox;

mod api;
pub(crate) use api::CentercodeApi;

use serde::Deserialize;

use crate::http::origin::Origin;

/// A file element offered by the server for a created feedback.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub(crate) struct FileElement {
    pub key: String,
    #[serde(default)]
    pub title: Option<String>,
    pub url: String,
    #[serde(rename = "acceptsMultipleAttachments", default)]
    pub accepts_multiple: bool,
}

/// The parts of a 201 Create Feedback answer that delivery needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Created {
    pub id: String,
    pub key: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(rename = "fileElements", default)]
    pub file_elements: Vec<FileElement>,
}

/// Reads a 201 body; `None` when it lacks the id or key.
pub(crate) fn parse_created(body: &str) -> Option<Created> {
    let created: Created = serde_json::from_str(body).ok()?;
    if created.key.trim().is_empty() || created.id.trim().is_empty() {
        return None;
    }
    Some(created)
}

/// For each attachment (by element key, in order), the element URL to post
/// to, or the reason it is rejected: the server offers no such element, or
/// the element takes a single file and an earlier attachment has it.
pub(crate) fn route_attachments(
    element_keys: &[&str],
    elements: &[FileElement],
) -> Vec<Result<String, String>> {
    let mut taken: Vec<&str> = Vec::new();
    element_keys
        .iter()
        .map(|key| {
            let Some(el) = elements.iter().find(|e| e.key == *key) else {
                let offered: Vec<&str> = elements.iter().map(|e| e.key.as_str()).collect();
                return Err(if offered.is_empty() {
                    format!("the server offers no file elements for this feedback, so {key:?} cannot be uploaded")
                } else {
                    format!(
                        "the server offers no file element {key:?} (offered: {})",
                        offered.join(", ")
                    )
                });
            };
            if !el.accepts_multiple && taken.contains(key) {
                return Err(format!(
                    "file element {key:?} accepts a single attachment and an earlier one has it"
                ));
            }
            taken.push(key);
            Ok(el.url.clone())
        })
        .collect()
}

/// [`route_attachments`], then the origin rule: an element URL handed back
/// by the server is only used when it is on the configured server's
/// origin (scheme, host, port), since the upload carries the API key. One
/// elsewhere is refused with the reason, and nothing is sent to it.
pub(crate) fn route_on_origin(
    element_keys: &[&str],
    elements: &[FileElement],
    base: &Origin,
) -> Vec<Result<String, String>> {
    route_attachments(element_keys, elements)
        .into_iter()
        .map(|route| {
            let url = route?;
            match Origin::of(&url) {
                Some(o) if o == *base => Ok(url),
                Some(o) => Err(format!(
                    "the server's file element URL is on {o}, not on the configured server {base}: \
                     refused, so that the API key goes nowhere else"
                )),
                None => Err(
                    "the server's file element URL is not an absolute http(s) URL: refused".into(),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(key: &str, url: &str) -> FileElement {
        FileElement {
            key: key.into(),
            title: None,
            url: url.into(),
            accepts_multiple: true,
        }
    }

    #[test]
    fn an_element_url_on_another_origin_is_refused() {
        let base = Origin::of("https://acme.centercode.com/api/v1").unwrap();
        let elements = [
            element(
                "Same",
                "https://ACME.centercode.com:443/api/v1/x/fileElements/Same",
            ),
            element("Host", "https://evil.example/api/v1/x"),
            element("Scheme", "http://acme.centercode.com/api/v1/x"),
            element("Port", "https://acme.centercode.com:8443/api/v1/x"),
            element("User", "https://acme.centercode.com@evil.example/x"),
            element("Relative", "/api/v1/x"),
        ];
        let keys = ["Same", "Host", "Scheme", "Port", "User", "Relative"];
        let routes = route_on_origin(&keys, &elements, &base);
        assert_eq!(
            routes[0].as_deref(),
            Ok("https://ACME.centercode.com:443/api/v1/x/fileElements/Same")
        );
        for (k, r) in keys.iter().zip(&routes).skip(1) {
            let reason = r.as_ref().expect_err(k);
            assert!(reason.contains("refused"), "{k}: {reason}");
        }
        assert!(routes[1]
            .as_ref()
            .unwrap_err()
            .contains("https://evil.example"));
        // An element the server does not offer keeps its own reason.
        let missing = route_on_origin(&["Nope"], &elements, &base);
        assert!(missing[0]
            .as_ref()
            .unwrap_err()
            .contains("offers no file element"));
    }
}
