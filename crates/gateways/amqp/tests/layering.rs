//! The layering rule stated in the crate's documentation: a module imports only from layers
//! below its own (or from its own layer without a circle), never from a higher one. The check
//! is the kit's (`porter_gateway_kit::layering`); this file holds the crate's table.

use std::path::Path;

/// Each top-level module's layer, as in `lib.rs`.
const LAYERS: &[(&str, u8)] = &[
    ("limits", 0),
    ("config", 0),
    ("error", 0),
    ("frame", 0),
    ("convert", 0),
    ("names", 0),
    ("auth", 1),
    ("out", 1),
    ("reply_to", 1),
    ("session", 2),
    ("confirmer", 3),
    ("channel", 3),
    ("commands", 4),
    ("connection", 5),
    ("server", 6),
];

#[test]
fn lower_layers_never_import_higher_ones_and_no_module_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = porter_gateway_kit::layering::violations(&src, LAYERS);
    assert!(violations.is_empty(), "{violations:#?}");
}
