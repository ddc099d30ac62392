//! template.yaml declares every route registry-local serves, each on its own function.

#[test]
fn every_route_is_a_function_event_in_the_template() {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
    )
    .expect("template.yaml");
    for route in quayside::http::routes() {
        let binary = format!("Binary: {}", route.function);
        let start = template
            .find(&binary)
            .unwrap_or_else(|| panic!("no function builds {}", route.function));
        // The function's resource runs until the next top-level resource.
        let block = &template[start..];
        let block = &block[..block.find("\n\n  ").unwrap_or(block.len())];
        for method in route.methods {
            let event = format!("Method: {method}\n            Path: {}", route.path);
            assert!(
                block.contains(&event),
                "{} lacks {method} {}",
                route.function,
                route.path
            );
        }
    }
}
