//! The console's pages, script, style and icon, compiled into the binary: nothing is fetched
//! from anywhere else (no CDN, no web fonts; charts are SVG drawn by the script).

/// The console itself (one page; the script draws each view).
pub(crate) const APP: &str = include_str!("../../assets/console/app.html");
const LOGIN: &str = include_str!("../../assets/console/login.html");

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console/console.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/console/icon.svg"),
    ),
];

/// An asset by file name: its content type and bytes.
pub(crate) fn get(name: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, kind, body)| (*kind, *body))
}

/// The login page, with `message` (HTML-escaped) when the last attempt failed.
pub(crate) fn login(message: Option<&str>) -> String {
    let note = message
        .map(|m| {
            format!(
                r#"<p class="login-error" id="login-error" role="alert">{}</p>"#,
                m.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            )
        })
        .unwrap_or_default();
    LOGIN.replace("<!--message-->", &note)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_asset_the_pages_name_is_embedded() {
        for page in [super::APP, super::LOGIN] {
            for name in page
                .split("/console/assets/")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
            {
                assert!(super::get(name).is_some(), "{name} is not embedded");
            }
            assert!(
                !page.contains("http://") && !page.contains("https://"),
                "nothing from elsewhere"
            );
        }
        assert!(super::login(Some("<b>")).contains("&lt;b&gt;"));
    }
}
