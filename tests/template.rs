//! template.yaml declares every route registry-local serves, each on its own function, at
//! every name depth API Gateway is given, and no route the code does not have.

use std::collections::BTreeSet;

fn template() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
    )
    .expect("template.yaml")
}

/// `(function, METHOD, path)` of every HttpApi event, by the function whose block holds it.
fn declared_events(template: &str) -> BTreeSet<(String, String, String)> {
    let mut events = BTreeSet::new();
    let mut function = String::new();
    let mut method = String::new();
    for line in template.lines() {
        let line = line.trim();
        if let Some(binary) = line.strip_prefix("Binary: ") {
            function = binary.to_string();
        } else if let Some(m) = line.strip_prefix("Method: ") {
            method = m.to_string();
        } else if let Some(path) = line.strip_prefix("Path: ") {
            events.insert((function.clone(), method.clone(), path.to_string()));
        }
    }
    events
}

#[test]
fn the_template_declares_exactly_the_code_routes_at_every_depth() {
    let expected: BTreeSet<(String, String, String)> = quayside::http::routes()
        .iter()
        .flat_map(|route| {
            route.methods.iter().flat_map(move |method| {
                route
                    .api_gateway_paths()
                    .into_iter()
                    .map(move |path| (route.function.to_string(), method.to_string(), path))
            })
        })
        .collect();
    let declared = declared_events(&template());
    let missing: Vec<_> = expected.difference(&declared).collect();
    let extra: Vec<_> = declared.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes the template lacks: {missing:#?}"
    );
    assert!(
        extra.is_empty(),
        "template routes the code lacks: {extra:#?}"
    );
    // The deepest name through API Gateway is six components.
    assert!(declared.iter().any(|(f, m, p)| f == "fetch-manifest"
        && m == "GET"
        && p == "/v2/{name1}/{name2}/{name3}/{name4}/{name5}/{name6}/manifests/{reference}"));
    assert!(declared.len() <= 300, "an HTTP API takes 300 routes");
}
