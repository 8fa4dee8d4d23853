//! The layering rule stated in the crate's documentation: a module imports only from layers
//! below its own (or from its own layer without a circle), never from a higher one. Read from
//! the sources, so a new `use crate::connection::…` inside the commands fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module's layer, as in `lib.rs`.
const LAYERS: &[(&str, u8)] = &[
    ("limits", 0),
    ("frame", 0),
    ("error", 0),
    ("destination", 0),
    ("convert", 0),
    ("config", 1),
    ("kafka", 1),
    ("session", 2),
    ("commands", 3),
    ("connection", 4),
    ("server", 5),
];

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
        .unwrap_or_else(|| {
            panic!("module `{module}` has no layer: add it to lib.rs's table and here")
        })
}

/// The top-level modules a source file names through `crate::`, outside comments.
fn crate_imports(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        // `use crate::{a, b}` groups
        if let Some(at) = code.find("crate::{") {
            let group = &code[at + "crate::{".len()..];
            for item in group.split([',', '}']) {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// Every source file under `dir` with the top-level module it belongs to.
fn sources(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let owner = module.map(str::to_string).unwrap_or_else(|| stem.clone());
        if path.is_dir() {
            sources(&path, Some(&owner), out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !(module.is_none() && stem == "lib")
        {
            out.push((owner, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn lower_layers_never_import_higher_ones_and_no_module_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, None, &mut files);
    assert!(files.len() >= LAYERS.len(), "every module's source is read");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for (module, source) in &files {
        for imported in crate_imports(source) {
            if &imported == module {
                continue;
            }
            if layer(&imported) > layer(module) {
                violations.push(format!(
                    "{module} (layer {}) imports {imported} (layer {})",
                    layer(module),
                    layer(&imported)
                ));
            }
            edges.entry(module.clone()).or_default().insert(imported);
        }
    }
    for (from, targets) in &edges {
        for to in targets {
            if edges.get(to).is_some_and(|back| back.contains(from)) {
                violations.push(format!("{from} and {to} import each other"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_check_sees_imports_in_all_their_forms() {
    let source = "use crate::session::Session;\nuse crate::{error, out::Out};\n// crate::server in a comment\nlet x = crate::names::consumer_tag();";
    let found = crate_imports(source);
    let expected: BTreeSet<String> = ["session", "error", "out", "names"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expected);
}
